import { pino } from 'pino';
import { intFlag, logLevelFlag, parseWithEnv, StartupError, workersFlag } from './args.js';
import { GATEWAY_OPTIONS, gatewayFromFlags } from './gateway-command.js';
import { drainOnSignals } from './signals.js';
import { ServiceSupervisor } from './supervisor.js';
import { GATEWAY_CURVE_HELP, curveFromFlags } from './curve-flags.js';
import { packageVersion } from './package-root.js';
import { START_ADMIN_DEFAULT } from './admin-flag.js';

/**
 * How long a request to a Handler of the start command's own services waits
 * for one while it starts or restarts (plus the restart's backoff), instead
 * of getting 503 for coming too early. A service takes about a second to
 * start its threads here.
 */
const START_HOLD_MS = 10_000;

export const START_HELP = `Usage: m2gate start [--config FILE] [--services K] [--workers N] [options]

The all-in-one embedded default (what 'npm start' runs): the gateway on the
configuration's port, plus K local 'm2gate service' processes with N worker
threads each attached to every Handler of the configuration (over the m2gate
link for Handlers with transport='link', else PUSH/SUB). It serves once every
service has started; a service that fails before it ever started (a missing
or broken routes module) stops 'start' with its reason, one that dies later
is restarted with backoff. Without --config it serves the mongrel2.conf
shipped with m2gate: a page on http://127.0.0.1:6767/ and the demo service
under /svc/. Under a process manager run 'node dist/cli/m2gate.js start'
itself: a signal sent to 'npm start' reaches only npm.

Options (each also read from the environment variable shown):
  --config FILE         mongrel2.conf (default: the one shipped with m2gate)   M2GATE_CONFIG
  --server NAME|UUID    which server of the file (default: the first)          M2GATE_SERVER
  --services K          service processes per Handler (default 1; 0: none)     M2GATE_SERVICES
  --workers N           worker threads per service, 1 to 1024 (default: cores) M2GATE_WORKERS
  --routes MODULE       the services' routes module, an ES module (default:    M2GATE_ROUTES
                        the demo routes)
  --max-heap-mb N       heap limit per service worker thread (see m2gate      M2GATE_MAX_HEAP_MB
                        service --help)
  --batch-ms MS         the services' thread batches (see m2gate service      M2GATE_BATCH_MS
                        --help; default 1, 0: every request alone)
  --app MODULE          app routes served in the gateway, an ES module         M2GATE_APP
                        (default: the demo app when neither --app nor --config)
  --mongrel2 SEND,RECV  the gateway serves a real Mongrel2 as one of its        M2GATE_MONGREL2
                        handlers instead of listening for HTTP
  --mongrel2-upload-store T  with --mongrel2: that Mongrel2's upload.temp_store  M2GATE_MONGREL2_UPLOAD_STORE
                        here; its uploads become request bodies (default: 413)
  --port N              override the server's port (0: any free port)          M2GATE_PORT
  --handler-timeout MS  no handler reply within MS → 504, also the deadline   M2GATE_HANDLER_TIMEOUT
                        of app routes (default 30000)
  --drain-timeout MS    how long SIGTERM waits for in-flight requests (10000)  M2GATE_DRAIN_TIMEOUT
  --headers-timeout MS  a client's request head must arrive within MS, else  M2GATE_HEADERS_TIMEOUT
                        408 (default 10000)
  --request-timeout MS  its whole request within MS, else 408 (default 60000) M2GATE_REQUEST_TIMEOUT
  --heartbeat-ms MS     link Handlers: heartbeat interval, both ends (1000)    M2GATE_HEARTBEAT_MS
  --liveness N          link: silent intervals before a peer is dead (3)       M2GATE_LIVENESS
  --link-queue N        link: requests that may wait for credit (default 256)  M2GATE_LINK_QUEUE
  --link-queue-timeout MS  link: longest wait for credit before 503 (10000)    M2GATE_LINK_QUEUE_TIMEOUT
  --admin HOST:PORT     admin listener: /metrics, /status.json, /healthz,    M2GATE_ADMIN
                        /readyz, dashboard at / (default ${START_ADMIN_DEFAULT}; 'off')
  --log-level LEVEL     fatal, error, warn, info, debug, trace, silent (info)  M2GATE_LOG_LEVEL
  --access-log WHERE    the gateway's access log: FILE (Combined Log Format),  M2GATE_ACCESS_LOG
                        'config' (the Server's access_log), '-' or 'off' (off)
  --log-requests        each service logs one line per request (default off)  M2GATE_LOG_REQUESTS
${GATEWAY_CURVE_HELP}                        (the local services use the gateway's key pair)
  -h, --help            this text
  -v, --version         print the version
`;

export async function startCommand(argv: string[]): Promise<void> {
  const { values } = parseWithEnv(
    argv,
    { ...GATEWAY_OPTIONS, 'log-requests': { type: 'boolean' }, services: { type: 'string' }, workers: { type: 'string' }, routes: { type: 'string' }, 'max-heap-mb': { type: 'string' }, 'batch-ms': { type: 'string' } },
    false,
  );
  if (values.help) {
    process.stdout.write(START_HELP);
    return;
  }
  if (values.version) {
    process.stdout.write(`${packageVersion()}\n`);
    return;
  }
  const services = intFlag(values, 'services', 0) ?? 1;
  const workers = workersFlag(values);
  const level = logLevelFlag(values);
  const maxHeapMb = intFlag(values, 'max-heap-mb', 16);
  const batchMs = intFlag(values, 'batch-ms', 0, 60_000);
  // With CURVE on, the local services use the gateway's own key pair (same
  // host, same trust): the gateway admits its own public key besides the
  // allow-list, and the services get the pair through their environment
  // (never on a command line, where ps would show the secret).
  const curve = curveFromFlags(values);
  const local = curve && { ...curve, allow: [...(curve.allow ?? []), curve.pair.publicKey] };
  // M2GATE_ADMIN is the gateway's: a service inheriting it would try to bind
  // the same address and fail to start (link services' metrics reach the
  // gateway's /metrics anyway). An empty value counts as unset.
  const serviceEnv: NodeJS.ProcessEnv = {
    M2GATE_ADMIN: '',
    ...(local ? { M2GATE_CURVE_SECRET: local.pair.secretKey, M2GATE_CURVE_SERVER_KEY: local.pair.publicKey, M2GATE_CURVE_ALLOW: '' } : {}),
  };
  const run = await gatewayFromFlags(values, 'gateway', local, START_ADMIN_DEFAULT);
  const { gateway } = run;
  const log = pino({ level, base: { component: 'start', pid: process.pid } });
  // Held before the gateway listens: a request can come the moment it does, and the
  // supervisors below spawn only once run.start() (which also opens the admin listener) is done.
  if (services > 0) for (const pool of gateway.pools) gateway.holdForStart(pool, START_HOLD_MS);
  await run.start();

  const supervisors: ServiceSupervisor[] = [];
  for (const pool of gateway.pools) {
    const { config } = pool;
    const args = config.transport === 'link' ? ['--connect', config.sendSpec] : ['--send', config.sendSpec, '--recv', config.recvSpec];
    args.push('--protocol', config.protocol);
    // Both ends of a link must agree on when silence means death.
    for (const flag of ['heartbeat-ms', 'liveness'] as const) if (values[flag] !== undefined) args.push(`--${flag}`, String(values[flag]));
    if (maxHeapMb !== undefined) args.push('--max-heap-mb', String(maxHeapMb));
    if (batchMs !== undefined) args.push('--batch-ms', String(batchMs));
    if (workers !== undefined) args.push('--workers', String(workers));
    if (values['log-level'] !== undefined) args.push('--log-level', String(values['log-level']));
    if (values['log-requests'] === true) args.push('--log-requests');
    // The services read the uploads this gateway spools (gateway/upload-spool.ts).
    if (gateway.uploads?.usable === true) args.push('--upload-store', gateway.uploads.absoluteTemplate);
    if (values.routes !== undefined) args.unshift(String(values.routes));
    for (let i = 0; i < services; i++) {
      const supervisor = new ServiceSupervisor(args, log, serviceEnv, {
        spawning: (delayMs) => gateway.holdForStart(pool, delayMs + START_HOLD_MS),
        died: (d) => gateway.recordRestart({ at: new Date().toISOString(), handler: config.sendSpec, ...d }),
      });
      supervisor.start();
      supervisors.push(supervisor);
    }
  }
  // From here a signal drains, also while the services are still starting
  // (a stopped supervisor's `started` then never settles).
  drainOnSignals(async () => {
    // Stop taking HTTP first, then let the services drain what they hold.
    const drained = await run.close();
    await Promise.all(supervisors.map((s) => s.stop()));
    return drained;
  }, log);
  // Serving only once every service has: one that fails before it ever
  // started would fail the same way at every restart (its routes module is
  // missing or broken), so that is a configuration error and start stops.
  const failed = (await Promise.allSettled(supervisors.map((s) => s.started))).find((r) => r.status === 'rejected');
  if (failed) {
    await Promise.all(supervisors.map((s) => s.stop()));
    await run.close();
    const why = (failed.reason as Error).message;
    throw new StartupError(`service${values.routes === undefined ? '' : ` (--routes ${String(values.routes)})`} failed to start: ${why}`);
  }
  if (gateway.adapter) log.info({ services: supervisors.length }, 'm2gate is serving as a Mongrel2 handler');
  else log.info({ port: gateway.port, services: supervisors.length }, `m2gate is serving http://127.0.0.1:${gateway.port}/`);
}
