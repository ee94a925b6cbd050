import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { pino, type Logger } from 'pino';
import { Gateway } from '../gateway/gateway.js';
import { compileApp } from '../gateway/app.js';
import { COMMON_OPTIONS, intFlag, logLevelFlag, parseWithEnv, StartupError, UsageError, type FlagValues } from './args.js';
import { loadConfig, type LoadedConfig } from './config.js';
import { drainOnSignals } from './signals.js';
import { GATEWAY_CURVE_HELP, GATEWAY_CURVE_OPTIONS, curveFromFlags } from './curve-flags.js';
import { BRUBECK_GATEWAY_HELP, BRUBECK_GATEWAY_OPTIONS, brubeckServicesFromFlags } from './brubeck-flags.js';
import { moduleLoadReason } from './module-errors.js';
import { describeStartFailure } from './startup-failure.js';
import { packageVersion } from './package-root.js';
import { ADMIN_HELP, ADMIN_OPTIONS, adminFromFlags, startAdmin } from './admin-flag.js';
import type { AdminServer } from '../admin/admin-server.js';
import { fileAccessLog, loggerAccessLog, type AccessLog } from '../gateway/access-log.js';

export const GATEWAY_HELP = `Usage: m2gate gateway [--config FILE] [--server NAME_OR_UUID] [options]

Serves HTTP as the chosen server of a mongrel2.conf (read directly: no m2sh,
no SQLite), with Mongrel2's host and route rules: Handler routes go to
Mongrel2 handlers in any language (PUSH/SUB on their endpoints), Dir routes
serve files, Proxy routes forward to an upstream.

Options (each also read from the environment variable shown):
  --config FILE         mongrel2.conf (default: the one shipped with m2gate)   M2GATE_CONFIG
  --server NAME|UUID    which server of the file (default: the first)          M2GATE_SERVER
  --app MODULE          app routes served in the gateway, matched first        M2GATE_APP
                        (default: the demo app when neither --app nor --config)
  --mongrel2 SEND,RECV  serve a real Mongrel2 as one of its handlers (its       M2GATE_MONGREL2
                        send_spec and recv_spec) instead of listening for HTTP
  --mongrel2-upload-store T  with --mongrel2: that Mongrel2's upload.temp_store  M2GATE_MONGREL2_UPLOAD_STORE
                        as this host reaches it; its async uploads become request
                        bodies (default: unset, they get 413)
  --port N              override the server's port (0: any free port)          M2GATE_PORT
  --handler-timeout MS  no handler reply within MS → 504 (default 30000)       M2GATE_HANDLER_TIMEOUT
  --drain-timeout MS    how long SIGTERM waits for in-flight requests (10000)  M2GATE_DRAIN_TIMEOUT
  --headers-timeout MS  a client's request head must arrive within MS, else  M2GATE_HEADERS_TIMEOUT
                        408 (default 10000)
  --request-timeout MS  its whole request within MS, else 408 (default 60000) M2GATE_REQUEST_TIMEOUT
  --heartbeat-ms MS     link Handlers: heartbeat interval (default 1000)       M2GATE_HEARTBEAT_MS
  --liveness N          link: silent intervals before a service is dead (3)    M2GATE_LIVENESS
  --link-queue N        link: requests that may wait for credit (default 256)  M2GATE_LINK_QUEUE
  --link-queue-timeout MS  link: longest wait for credit before 503 (10000)    M2GATE_LINK_QUEUE_TIMEOUT
  --log-level LEVEL     fatal, error, warn, info, debug, trace, silent (info)  M2GATE_LOG_LEVEL
  --access-log WHERE    one line per request: FILE (Combined Log Format),     M2GATE_ACCESS_LOG
                        'config' (the Server's access_log), '-' (NDJSON on
                        stdout) or 'off' (default: off)
${ADMIN_HELP}${BRUBECK_GATEWAY_HELP}${GATEWAY_CURVE_HELP}  -h, --help            this text
  -v, --version         print the version

A Handler declared with transport='link' in the config is served over the
m2gate link: the gateway binds a ROUTER on its send_spec and services join
with 'm2gate service --connect SEND_SPEC' (protocol/m2gate-link.md).
`;

export const GATEWAY_OPTIONS = {
  config: { type: 'string' },
  app: { type: 'string' },
  mongrel2: { type: 'string' },
  'mongrel2-upload-store': { type: 'string' },
  server: { type: 'string' },
  port: { type: 'string' },
  'handler-timeout': { type: 'string' },
  'drain-timeout': { type: 'string' },
  'headers-timeout': { type: 'string' },
  'request-timeout': { type: 'string' },
  'heartbeat-ms': { type: 'string' },
  liveness: { type: 'string' },
  'link-queue': { type: 'string' },
  'link-queue-timeout': { type: 'string' },
  'log-level': { type: 'string' },
  'access-log': { type: 'string' },
  ...ADMIN_OPTIONS,
  ...GATEWAY_CURVE_OPTIONS,
  ...BRUBECK_GATEWAY_OPTIONS,
  ...COMMON_OPTIONS,
} as const;

/**
 * The app module's default export: --app, else the demo app when no --config was given.
 * @throws StartupError naming the module when it does not load or has no valid default export.
 */
async function loadApp(values: FlagValues): Promise<unknown> {
  const file = values.app as string | undefined;
  if (file === undefined) {
    if (values.config !== undefined) return undefined;
    return (await import('../gateway/demo-app.js')).default;
  }
  const path = resolve(file);
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
  } catch (err) {
    throw new StartupError(`--app ${file}: ${moduleLoadReason(err, path)}`);
  }
  try {
    // As `m2gate service` does for a routes module: a module without a default export is a mistake.
    if (!('default' in mod)) throw new Error('the app module must default-export an object of routes (export default defineApp({ … }))');
    compileApp(mod.default);
  } catch (err) {
    throw new StartupError(`--app ${file}: ${(err as Error).message}`);
  }
  return mod.default;
}

/** `--access-log`: a file, the config's `access_log`, `-` for stdout, or off. */
function accessLogFromFlags(values: FlagValues, loaded: LoadedConfig, logger: Logger): AccessLog | undefined {
  const where = values['access-log'] as string | undefined;
  if (where === undefined || where === 'off') return undefined;
  if (where === '-') return loggerAccessLog(logger);
  // Mongrel2 resolves access_log against its working directory; the gateway against the config's folder, as Dir bases.
  const file = where === 'config' ? resolve(loaded.cwd, loaded.server.accessLog) : resolve(where);
  try {
    return fileAccessLog(file);
  } catch (err) {
    throw new StartupError(`--access-log ${where}: cannot open ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function mongrel2Specs(value: string | undefined): { sendSpec: string; recvSpec: string } | undefined {
  if (value === undefined) return undefined;
  const [sendSpec, recvSpec, ...rest] = value.split(',').map((s) => s.trim());
  if (!sendSpec || !recvSpec || rest.length > 0) throw new UsageError(`--mongrel2 takes SEND_SPEC,RECV_SPEC (got '${value}')`);
  return { sendSpec, recvSpec };
}

export interface GatewayRun {
  gateway: Gateway;
  loaded: LoadedConfig;
  /** Starts the gateway, then its admin listener. @throws StartupError naming what failed to bind or connect (the gateway has closed what it opened). */
  start(): Promise<void>;
  /** Drains the gateway (Gateway.close), then closes the admin listener. */
  close(): Promise<boolean>;
}

/** Builds a gateway from parsed flags (shared with `m2gate start`). `curve` overrides the CURVE flags. */
export async function gatewayFromFlags(values: FlagValues, component = 'gateway', curve = curveFromFlags(values), adminDefault?: string): Promise<GatewayRun> {
  const level = logLevelFlag(values);
  const adminAddr = adminFromFlags(values, adminDefault);
  const port = intFlag(values, 'port', 0, 65_535);
  const mongrel2 = mongrel2Specs(values.mongrel2 as string | undefined);
  const uploadStore = values['mongrel2-upload-store'] as string | undefined;
  if (uploadStore !== undefined && mongrel2 === undefined) throw new UsageError('--mongrel2-upload-store needs --mongrel2');
  const loaded = loadConfig(values.config as string | undefined, values.server as string | undefined);
  const logger = pino({ level, base: { component, pid: process.pid } });
  for (const warning of loaded.config.warnings ?? []) logger.warn({ config: loaded.file }, warning);
  const gateway = new Gateway({
    config: loaded.config,
    server: loaded.server,
    cwd: loaded.cwd,
    port,
    handlerTimeoutMs: intFlag(values, 'handler-timeout', 1),
    drainTimeoutMs: intFlag(values, 'drain-timeout', 0),
    headersTimeoutMs: intFlag(values, 'headers-timeout', 1),
    requestTimeoutMs: intFlag(values, 'request-timeout', 1),
    accessLog: accessLogFromFlags(values, loaded, logger),
    logger,
    app: await loadApp(values),
    mongrel2: mongrel2 && { ...mongrel2, uploadStore },
    curve,
    brubeck: brubeckServicesFromFlags(values),
    metrics: adminAddr !== undefined,
    link: {
      heartbeatMs: intFlag(values, 'heartbeat-ms', 10),
      // 1 makes idle peers flap: heartbeats may come up to two intervals apart (measured).
      liveness: intFlag(values, 'liveness', 2),
      maxQueue: intFlag(values, 'link-queue', 0),
      queueTimeoutMs: intFlag(values, 'link-queue-timeout', 1),
    },
  });
  const start = async (): Promise<void> => {
    try {
      await gateway.start();
    } catch (err) {
      const line = describeStartFailure(err, { loaded, pools: gateway.pools, mongrel2, host: loaded.server.bindAddr, port: port ?? loaded.server.port, portFrom: port === undefined ? loaded.file : '--port' });
      throw line === undefined ? err : new StartupError(line, { cause: err });
    }
    if (adminAddr) {
      try {
        admin = await startAdmin(gateway.adminSource(), adminAddr, logger);
      } catch (err) {
        await gateway.close();
        throw err;
      }
    }
  };
  let admin: AdminServer | undefined;
  const close = async (): Promise<boolean> => {
    const drained = await gateway.close();
    await admin?.close();
    return drained;
  };
  return { gateway, loaded, start, close };
}

export async function gatewayCommand(argv: string[]): Promise<void> {
  const { values } = parseWithEnv(argv, GATEWAY_OPTIONS, false);
  if (values.help) {
    process.stdout.write(GATEWAY_HELP);
    return;
  }
  if (values.version) {
    process.stdout.write(`${packageVersion()}\n`);
    return;
  }
  const curve = curveFromFlags(values);
  // The ZAP handler would refuse to start later; say which flag is missing now.
  if (curve && !curve.allow) throw new UsageError('--curve-secret needs --curve-allow (the public keys of the services the gateway admits)');
  const run = await gatewayFromFlags(values, 'gateway', curve);
  await run.start();
  drainOnSignals(() => run.close(), run.gateway.log);
}
