/**
 * The ZAP handler (ZeroMQ RFC 27) that admits CURVE clients by public key.
 *
 * libzmq asks the socket bound at `inproc://zeromq.zap.01` in the server
 * socket's context whether to accept each CURVE handshake. zeromq.js shares
 * one default context between all sockets of the process, worker threads
 * included, so one handler serves every m2gate server socket, and only one can
 * be bound: this module keeps a single ROUTER for the process (the thread that
 * first starts an authenticator) and one allow-list per ZAP domain.
 *
 * Domains: each {@link startZapAuthenticator} call owns one domain (default
 * `m2gate`, the domain {@link curveServerOptions} sets); a request for a
 * domain nobody registered is denied, as is any mechanism other than CURVE.
 * An empty allow-list admits no one. Server sockets also set
 * `zapEnforceDomain`, so while no handler is bound (before start, after the
 * last close) libzmq refuses every CURVE client rather than admitting all.
 *
 * Order: start the authenticator before binding server sockets; close it after
 * closing them.
 */
import { Router } from 'zeromq';
import type { Logger } from 'pino';
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';
import { readAllowList } from './curve-keys.js';
import { ZAP_DOMAIN, type CurveConfig } from './curve-config.js';
import { z85Encode } from './z85.js';

const ZAP_ENDPOINT = 'inproc://zeromq.zap.01';
/** A denied key is logged at most once per this interval (libzmq retries every 100 ms). */
const DENY_LOG_INTERVAL_MS = 60_000;
const MAX_DENY_LOG_ENTRIES = 1024;
/** How long a restart waits for the inproc name our last close still holds. */
const REBIND_WAIT_MS = 2000;

export interface ZapStats {
  /** Handshakes admitted. */
  allowed: number;
  /** Handshakes refused (key not allowed, or not CURVE). */
  denied: number;
}

/** One answered ZAP request. */
export interface ZapDecision {
  allowed: boolean;
  domain: string;
  /** The client's IP address as libzmq reports it. */
  address: string;
  mechanism: string;
  /** The client's public key (Z85), for CURVE requests. */
  clientKey: string | undefined;
  reason: string;
}

export interface ZapAuthenticatorOptions {
  /** Client public keys (Z85 strings or files of keys, see readAllowList). Empty admits no one. */
  allow: readonly string[];
  /** The ZAP domain whose requests this allow-list answers. Defaults to `m2gate`. */
  domain?: string;
  /** Denials are logged at warn (each key at most once a minute), admissions at debug. */
  log?: Pick<Logger, 'warn' | 'debug'>;
  /** Called after each decision for this domain (tests, metrics). */
  onDecision?: (decision: ZapDecision) => void;
}

export interface ZapAuthenticator {
  readonly domain: string;
  readonly stats: ZapStats;
  /** Stops answering for this domain; unbinds the handler when no domain is left. Idempotent. */
  close(): Promise<void>;
}

interface Registration {
  readonly allowed: Set<string>;
  readonly stats: ZapStats;
  readonly log: Pick<Logger, 'warn' | 'debug'> | undefined;
  readonly onDecision: ((decision: ZapDecision) => void) | undefined;
  readonly lastLogged: Map<string, number>;
}

interface Handler {
  readonly router: Router;
  readonly loop: Promise<void>;
}

const registrations = new Map<string, Registration>();
let handler: Promise<Handler> | undefined;
let closing: Promise<void> = Promise.resolve();

/** Whether this module has closed a handler before (its inproc name may still be held). */
let closedBefore = false;

async function openHandler(): Promise<Handler> {
  await closing;
  const router = new Router();
  try {
    await bindZapEndpoint(router);
  } catch (err) {
    router.close();
    throw new M2gateError(
      ERROR_CODES.CONFIG,
      `cannot bind the ZAP handler at ${ZAP_ENDPOINT} (another one runs in this process's zeromq context)`,
      { cause: err },
    );
  }
  return { router, loop: serve(router) };
}

/**
 * close() releases the inproc name later, on libzmq's reaper thread: binding
 * right after our own close failed 65 times in 2000 (EADDRINUSE). So after a
 * close of ours, EADDRINUSE is retried for a while; before one, it means
 * another handler owns the endpoint.
 */
async function bindZapEndpoint(router: Router): Promise<void> {
  const deadline = Date.now() + REBIND_WAIT_MS;
  for (;;) {
    try {
      await router.bind(ZAP_ENDPOINT);
      return;
    } catch (err) {
      const inUse = (err as { code?: string }).code === 'EADDRINUSE';
      if (!inUse || !closedBefore || Date.now() >= deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

async function serve(router: Router): Promise<void> {
  try {
    // The iterator ends when close() closes the router.
    for await (const frames of router) {
      const reply = answer(frames);
      if (reply !== undefined) await router.send(reply);
    }
  } catch (err) {
    // A send cut short by close() is expected; anything else is a bug worth a crash.
    if (!router.closed) throw err;
  }
}

/**
 * RFC 27 request, after the ROUTER's routing id and empty delimiter:
 * version, request id, domain, address, identity, mechanism, credentials...
 * Reply: version, request id, status code, status text, user id, metadata.
 */
function answer(frames: Buffer[]): Array<Buffer | string> | undefined {
  const [routingId, delimiter, version, requestId, domainFrame, addressFrame, , mechanismFrame, credential] = frames;
  if (routingId === undefined || delimiter?.length !== 0 || requestId === undefined) return undefined;
  const reply = (status: string, text: string, userId = ''): Array<Buffer | string> => [routingId, '', '1.0', requestId, status, text, userId, ''];
  if (version?.toString('latin1') !== '1.0' || mechanismFrame === undefined) return reply('500', 'malformed ZAP request');

  const domain = domainFrame?.toString('utf8') ?? '';
  const address = addressFrame?.toString('latin1') ?? '';
  const mechanism = mechanismFrame.toString('latin1');
  const clientKey = mechanism === 'CURVE' && credential?.length === 32 ? z85Encode(credential) : undefined;
  const reg = registrations.get(domain);
  let reason: string;
  if (reg === undefined) reason = `no allow-list for ZAP domain '${domain}'`;
  else if (clientKey === undefined) reason = `mechanism ${mechanism} refused: only CURVE clients are admitted`;
  else if (!reg.allowed.has(clientKey)) reason = 'public key not in the allow-list';
  else reason = 'OK';
  const allowed = reason === 'OK';
  if (reg !== undefined) {
    if (allowed) reg.stats.allowed++;
    else reg.stats.denied++;
    logDecision(reg, { allowed, domain, address, mechanism, clientKey, reason });
    reg.onDecision?.({ allowed, domain, address, mechanism, clientKey, reason });
  }
  return allowed ? reply('200', 'OK', clientKey) : reply('400', reason);
}

function logDecision(reg: Registration, d: ZapDecision): void {
  if (reg.log === undefined) return;
  const fields = { domain: d.domain, address: d.address, mechanism: d.mechanism, clientKey: d.clientKey };
  if (d.allowed) {
    reg.log.debug(fields, 'CURVE client admitted');
    return;
  }
  const id = `${d.clientKey ?? d.mechanism}@${d.address}`;
  const now = Date.now();
  const last = reg.lastLogged.get(id);
  if (last !== undefined && now - last < DENY_LOG_INTERVAL_MS) return;
  if (reg.lastLogged.size >= MAX_DENY_LOG_ENTRIES) reg.lastLogged.clear();
  reg.lastLogged.set(id, now);
  reg.log.warn({ ...fields, reason: d.reason }, 'CURVE client denied (repeats from this peer are logged once a minute)');
}

/**
 * Starts answering ZAP requests for `domain` with this allow-list, binding
 * the process's ZAP handler if it is not bound yet. Resolves once requests
 * are answered.
 * @throws M2gateError (CONFIG) for a bad allow-list key, a domain that already
 *   has an authenticator, or a ZAP endpoint bound by someone else.
 */
export async function startZapAuthenticator(options: ZapAuthenticatorOptions): Promise<ZapAuthenticator> {
  const domain = options.domain ?? ZAP_DOMAIN;
  const allowed = new Set(readAllowList(options.allow));
  if (registrations.has(domain)) {
    throw new M2gateError(ERROR_CODES.CONFIG, `a ZAP authenticator for domain '${domain}' is already running`);
  }
  const reg: Registration = {
    allowed,
    stats: { allowed: 0, denied: 0 },
    log: options.log,
    onDecision: options.onDecision,
    lastLogged: new Map(),
  };
  registrations.set(domain, reg);
  try {
    handler ??= openHandler();
    await handler;
  } catch (err) {
    registrations.delete(domain);
    handler = undefined;
    throw err;
  }
  let closed = false;
  return {
    domain,
    stats: reg.stats,
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      registrations.delete(domain);
      if (registrations.size > 0 || handler === undefined) return;
      const current = handler;
      handler = undefined;
      closing = current.then(async ({ router, loop }) => {
        // No unbind() first: unbinding inproc while a handshake's ZAP pipe was
        // open aborted the process (libzmq 4.3.5 pipe.cpp:355 assertion).
        router.close();
        closedBefore = true;
        await loop;
      });
      await closing;
    },
  };
}

/**
 * The gateway's one line: starts the authenticator for a server config, or
 * does nothing when CURVE is off.
 * @throws M2gateError (CONFIG) when CURVE is on but the config has no allow-list.
 */
export async function startCurveAuthenticator(
  config: CurveConfig | undefined,
  log?: Pick<Logger, 'warn' | 'debug'>,
): Promise<ZapAuthenticator | undefined> {
  if (config === undefined) return undefined;
  if (config.allow === undefined) {
    throw new M2gateError(
      ERROR_CODES.CONFIG,
      'CURVE is on but no client allow-list was given (--curve-allow / M2GATE_CURVE_ALLOW): no client could connect',
    );
  }
  return startZapAuthenticator({ allow: config.allow, ...(log === undefined ? {} : { log }) });
}
