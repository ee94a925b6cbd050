/**
 * The service's options: what users may set, the checks and the defaults.
 * Everything here runs once, in the Service constructor.
 */
import { randomUUID } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';
import type { CurveConfig } from '../zmq/curve-config.js';
import type { BrubeckFrontConfig } from './brubeck-front.js';

export interface ServiceOptions {
  /** file: URL or path of the compiled routes module. Defaults to the built-in demo routes. */
  routesModule?: string;
  /** The front's send_spec endpoints (PULL connects to each). Not with `connect`. */
  send?: string[];
  /** The front's recv_spec endpoints (PUB connects to each). Not with `connect`. */
  recv?: string[];
  /** The m2gate link instead: the gateway's ROUTER endpoint (a link Handler's send_spec), or several gateways' (each gets a share of the credit: workers/gateway-list.ts). */
  connect?: string | string[];
  /** The link: a file listing more gateway endpoints (workers/gateway-list.ts), read at start and by Service.reloadGateways() (SIGHUP). */
  connectFile?: string | undefined;
  /** Or serve a Brubeck service client (workers/brubeck-front.ts): its addresses and passphrase. */
  brubeck?: BrubeckFrontConfig | undefined;
  /** Link: requests held at once, announced to the gateway. Defaults to 32 per thread: with less, trivial routes cost up to 1.5x the CPU per request of PUSH/SUB (measured: the pool idles between credit round trips); the gateway balances by measured speed, not by filling credit. */
  credit?: number;
  /** Link heartbeat interval in ms. Defaults to 1,000. */
  heartbeatMs?: number;
  /** Link: silent heartbeat intervals before the gateway counts as lost. Defaults to 3. */
  liveness?: number;
  /** Worker threads. Defaults to the number of cores. */
  workers?: number;
  /** Names this service process in its logs (the sender_id of classic Mongrel2 handlers). Defaults to a random UUID. */
  senderId?: string;
  /** The Handler's header encoding; both are parsed, a mismatch is logged once. */
  expectEncoding?: 'json' | 'tnetstring' | undefined;
  /** Service-wide task timeout in ms (routes may override). Defaults to 30,000. */
  timeoutMs?: number;
  /** Requests that may wait for a thread before 503 (abandoned ones do not count). Defaults to 128 per thread, at least 256. */
  maxQueue?: number;
  /** How long SIGTERM waits for in-flight requests, in ms. Defaults to 10,000. */
  drainTimeoutMs?: number;
  /** After an abort, how long a running handler may take to notice before its thread is terminated. Defaults to 1,000. */
  abortGraceMs?: number;
  /** Seconds for 503's Retry-After. Defaults to 1. */
  retryAfterSeconds?: number;
  /** Heap limit of each worker thread in MiB: a route that exceeds it gets 500 and its thread is replaced. Defaults to Node's own limit. */
  maxHeapMb?: number | undefined;
  /**
   * Requests that wait for a busy thread go to it as one batch, as many as their routes'
   * measured run times fit in this many ms (workers/task-batcher.ts); 0 sends each alone.
   * Defaults to 1.
   */
  batchMs?: number;
  /** CURVE client keys for the sockets to the front (this service's pair and the front's public key). */
  curve?: CurveConfig | undefined;
  /**
   * The front's `upload.temp_store` template as this process reaches it (absolute, or relative
   * to its working directory): async uploads are read from there only (upload-body.ts). Unset:
   * uploads get 413.
   */
  uploadStore?: string | undefined;
  /** Keep metrics (admin/service-metrics.ts) for an admin listener and, over the link, for the gateway. Off by default. */
  metrics?: boolean;
  /**
   * One `request` log line (info) per answered request. Defaults to false: a
   * synchronous stdout write per request cost 18–30 % of the service's main
   * thread on trivial routes (bench/README.md); metrics count the same.
   */
  logRequests?: boolean;
  logger?: Logger;
}

/** The options with every default applied (the logger is the Service's own). */
export type ResolvedServiceOptions = Required<
  Omit<ServiceOptions, 'logger' | 'routesModule' | 'senderId' | 'expectEncoding' | 'connect' | 'connectFile' | 'send' | 'recv' | 'maxHeapMb' | 'curve' | 'brubeck' | 'metrics' | 'logRequests' | 'uploadStore'>
> & {
  brubeck: BrubeckFrontConfig | undefined;
  curve: CurveConfig | undefined;
  maxHeapMb: number | undefined;
  routesModule: string;
  senderId: string;
  send: string[];
  recv: string[];
  /** The link's fixed endpoints (empty without the link, or with only a file). */
  connect: string[];
  connectFile: string | undefined;
  /** The link is on: `connect` or `connectFile` given. */
  link: boolean;
  uploadStore: string | undefined;
};

/** The built-in demo routes, next to this file (`.ts` under tsx, `.js` in dist/). */
function defaultRoutesModule(): string {
  const ext = extname(fileURLToPath(import.meta.url));
  return new URL(`./demo-routes${ext}`, import.meta.url).href;
}

/**
 * Checks the options and fills in the defaults.
 *
 * @throws M2gateError (M2G_ERR_OPTION) when workers or credit are out of range, or the
 *   front is given both ways (connect and send/recv) or neither.
 * @throws M2gateError (M2G_ERR_CONFIG) when CURVE is on without the front's public key.
 */
export function resolveServiceOptions(options: ServiceOptions): ResolvedServiceOptions {
  const workers = options.workers ?? availableParallelism();
  if (!(Number.isInteger(workers) && workers >= 1)) throw new M2gateError(ERROR_CODES.OPTION, 'workers must be a positive integer');
  const send = options.send ?? [];
  const recv = options.recv ?? [];
  const connect = options.connect === undefined ? [] : typeof options.connect === 'string' ? [options.connect] : options.connect;
  const link = connect.length > 0 || options.connectFile !== undefined;
  if (options.brubeck !== undefined && (link || send.length > 0 || recv.length > 0)) throw new M2gateError(ERROR_CODES.OPTION, 'brubeck excludes connect and send/recv');
  if (link) {
    if (send.length > 0 || recv.length > 0) throw new M2gateError(ERROR_CODES.OPTION, 'connect (the m2gate link) and send/recv (Mongrel2) exclude each other');
  } else if (options.brubeck === undefined && (send.length === 0 || recv.length === 0)) {
    throw new M2gateError(ERROR_CODES.OPTION, 'at least one send and one recv endpoint are needed (or connect, for the m2gate link)');
  }
  if (options.curve !== undefined && options.curve.serverKey === undefined) {
    throw new M2gateError(ERROR_CODES.CONFIG, "CURVE is on but the front's public key is missing (--curve-server-key / M2GATE_CURVE_SERVER_KEY)");
  }
  const batchMs = options.batchMs ?? 1;
  if (!(Number.isFinite(batchMs) && batchMs >= 0)) throw new M2gateError(ERROR_CODES.OPTION, 'batchMs must be a number of ms, 0 or more');
  const credit = options.credit ?? 32 * workers;
  if (!(Number.isInteger(credit) && credit >= 1 && credit <= 999_999)) throw new M2gateError(ERROR_CODES.OPTION, 'credit must be an integer from 1 to 999999');
  return {
    routesModule: options.routesModule ?? defaultRoutesModule(),
    send,
    recv,
    connect,
    connectFile: options.connectFile,
    link,
    brubeck: options.brubeck,
    credit,
    heartbeatMs: options.heartbeatMs ?? 1000,
    liveness: options.liveness ?? 3,
    workers,
    senderId: options.senderId ?? randomUUID(),
    timeoutMs: options.timeoutMs ?? 30_000,
    maxQueue: options.maxQueue ?? Math.max(256, workers * 128),
    drainTimeoutMs: options.drainTimeoutMs ?? 10_000,
    abortGraceMs: options.abortGraceMs ?? 1_000,
    retryAfterSeconds: options.retryAfterSeconds ?? 1,
    maxHeapMb: options.maxHeapMb,
    batchMs,
    curve: options.curve,
    uploadStore: options.uploadStore,
  };
}
