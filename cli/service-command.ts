import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import { pino } from 'pino';
import { Service } from '../workers/service.js';
import { COMMON_OPTIONS, intFlag, listFlag, logLevelFlag, parseWithEnv, StartupError, UsageError, workersFlag } from './args.js';
import { drainOnSignals, reloadOnHangup } from './signals.js';
import { SERVICE_CURVE_HELP, SERVICE_CURVE_OPTIONS, curveFromFlags } from './curve-flags.js';
import { BRUBECK_SERVICE_HELP, BRUBECK_SERVICE_OPTIONS, brubeckFrontFromFlags } from './brubeck-flags.js';
import { checkBrubeckEndpoints } from '../workers/brubeck-front.js';
import { moduleLoadReason } from './module-errors.js';
import { packageVersion } from './package-root.js';
import { ADMIN_HELP, ADMIN_OPTIONS, adminFromFlags, startAdmin } from './admin-flag.js';
import type { AdminServer } from '../admin/admin-server.js';
import type { ServiceReport } from './supervisor.js';

export const SERVICE_HELP = `Usage: m2gate service [ROUTES_MODULE] --send SPEC --recv SPEC [options]
       m2gate service [ROUTES_MODULE] --connect SPEC [--connect SPEC...] [--connect-file F] [options]
       m2gate service [ROUTES_MODULE] --brubeck ADDR,RESP_ADDR --passphrase-file F [options]

Runs a Mongrel2 handler whose routes run on a pool of worker threads. With
--send/--recv it connects PULL to the front's send_spec and PUB to its
recv_spec, like any Mongrel2 handler; the front is a real Mongrel2 or the
m2gate gateway. With --connect it joins an m2gate gateway over the m2gate
link (a Handler with transport='link'; SPEC is its send_spec): credit-based
dispatch, heartbeats, and no request lost when a service dies. Several
--connect (or a --connect-file) join several gateways at once, each with an
equal share of the credit; SIGHUP re-reads the file, joining gateways added
to it and leaving (after their requests are answered) those removed.
Without ROUTES_MODULE it serves the built-in demo routes (/svc/hello,
/svc/fib/:n, /svc/hash, /svc/slow, /svc/upload).

Options (each also read from the environment variable shown):
  --send SPEC           the front's send_spec, e.g. tcp://127.0.0.1:9997 (repeatable)   M2GATE_SEND
  --recv SPEC           the front's recv_spec, e.g. tcp://127.0.0.1:9996 (repeatable)   M2GATE_RECV
  --connect SPEC        the gateway's link endpoint (a link Handler's send_spec)        M2GATE_CONNECT
                        (repeatable; the variable takes a comma-separated list)
  --connect-file F      more gateway endpoints, one per line (# comments), re-read      M2GATE_CONNECT_FILE
                        on SIGHUP
  --credit N            link: requests held at once, up to 999999 (default 32 per       M2GATE_CREDIT
                        worker thread); with N gateways each gets credit/N, at least
                        one per worker thread
  --heartbeat-ms MS     link: heartbeat interval (default 1000)                         M2GATE_HEARTBEAT_MS
  --liveness N          link: silent intervals before the gateway is lost (default 3)   M2GATE_LIVENESS
  --workers N           worker threads, 1 to 1024 (default: number of cores)          M2GATE_WORKERS
  --sender-id ID        names this process in logs (default: random UUID)              M2GATE_SENDER_ID
  --log-requests        one 'request' log line per request (default: off; costs     M2GATE_LOG_REQUESTS
                        a stdout write per request)
  --protocol P          json or tnetstring: the Handler's header encoding; both are
                        always parsed, this only warns on a mismatch                     M2GATE_PROTOCOL
  --timeout MS          per-request timeout, routes may override (default 30000)        M2GATE_TIMEOUT
  --max-queue N         requests waiting for a thread before 503 (default 128/thread,
                        at least 256)                                          M2GATE_MAX_QUEUE
  --drain-timeout MS    how long SIGTERM waits for in-flight requests (default 10000)   M2GATE_DRAIN_TIMEOUT
  --max-heap-mb N       heap limit per worker thread: a route over it gets 500 and
                        its thread is replaced (default: Node's limit)          M2GATE_MAX_HEAP_MB
  --batch-ms MS         requests waiting for a busy thread go to it together, as many
                        as their routes' measured run time fits in MS (default 1;
                        0: every request alone)                                 M2GATE_BATCH_MS
  --log-level LEVEL     pino level: fatal, error, warn, info, debug (default info)      M2GATE_LOG_LEVEL
  --upload-store T      the front's upload.temp_store as this host reaches it, e.g.      M2GATE_UPLOAD_STORE
                        /srv/m2/tmp/upload.XXXXXX: routes with uploads: true read
                        async uploads from there (default: unset, uploads get 413)
${ADMIN_HELP}                        (over --connect the gateway's own /metrics shows this
                        service's metrics too: --admin is for PUSH/SUB services)
${BRUBECK_SERVICE_HELP}${SERVICE_CURVE_HELP}  -h, --help            this text
  -v, --version         print the version

ROUTES_MODULE is an ES module (.mjs, or .js under "type": "module").
`;

/** Under `m2gate start`: tells the supervisor (supervisor.ts) over the IPC channel; false if there is none. */
function report(message: ServiceReport): Promise<boolean> {
  if (process.env.M2GATE_SUPERVISED !== '1' || !process.send) return Promise.resolve(false);
  return new Promise((resolve) => process.send!(message, undefined, undefined, (err: Error | null) => resolve(err === null)));
}

export async function serviceCommand(argv: string[]): Promise<void> {
  const { values, positionals } = parseWithEnv(
    argv,
    {
      send: { type: 'string', multiple: true },
      recv: { type: 'string', multiple: true },
      connect: { type: 'string', multiple: true },
      'connect-file': { type: 'string' },
      credit: { type: 'string' },
      'heartbeat-ms': { type: 'string' },
      liveness: { type: 'string' },
      workers: { type: 'string' },
      'sender-id': { type: 'string' },
      'log-requests': { type: 'boolean' },
      protocol: { type: 'string' },
      timeout: { type: 'string' },
      'max-queue': { type: 'string' },
      'drain-timeout': { type: 'string' },
      'max-heap-mb': { type: 'string' },
      'batch-ms': { type: 'string' },
      'log-level': { type: 'string' },
      'upload-store': { type: 'string' },
      ...ADMIN_OPTIONS,
      ...SERVICE_CURVE_OPTIONS,
      ...BRUBECK_SERVICE_OPTIONS,
      ...COMMON_OPTIONS,
    },
    true,
  );
  if (values.help) {
    process.stdout.write(SERVICE_HELP);
    return;
  }
  if (values.version) {
    process.stdout.write(`${packageVersion()}\n`);
    return;
  }
  if (positionals.length > 1) throw new UsageError('at most one ROUTES_MODULE');
  const send = listFlag(values, 'send');
  const recv = listFlag(values, 'recv');
  const connectList = listFlag(values, 'connect');
  const connectFile = values['connect-file'] as string | undefined;
  const link = connectList.length > 0 || connectFile !== undefined;
  if (link && (send.length > 0 || recv.length > 0)) throw new UsageError('--connect (the m2gate link) cannot be combined with --send/--recv');
  const brubeck = brubeckFrontFromFlags(values);
  if (brubeck !== undefined && (link || send.length > 0 || recv.length > 0)) throw new UsageError('--brubeck cannot be combined with --connect or --send/--recv');
  if (brubeck === undefined && !link && (send.length === 0 || recv.length === 0)) throw new UsageError('--send and --recv are required (or --connect, for the m2gate link, or --brubeck)');
  const protocol = values.protocol as string | undefined;
  if (protocol !== undefined && protocol !== 'json' && protocol !== 'tnetstring') {
    throw new UsageError(`--protocol must be json or tnetstring (got '${protocol}')`);
  }
  const level = logLevelFlag(values);
  const logger = pino({ level, base: { component: 'service', pid: process.pid } });
  const modulePath = positionals[0];
  const adminAddr = adminFromFlags(values);
  let admin: AdminServer | undefined;
  const service = new Service({
    // Over the link the gateway shows them; with --admin, this service does.
    metrics: adminAddr !== undefined || link,
    routesModule: modulePath === undefined ? undefined : pathToFileURL(resolve(modulePath)).href,
    send,
    recv,
    connect: connectList,
    connectFile: connectFile === undefined ? undefined : resolve(connectFile),
    brubeck,
    credit: intFlag(values, 'credit', 1, 999_999),
    heartbeatMs: intFlag(values, 'heartbeat-ms', 10),
    liveness: intFlag(values, 'liveness', 2),
    workers: workersFlag(values),
    senderId: values['sender-id'] as string | undefined,
    logRequests: values['log-requests'] === true,
    expectEncoding: protocol,
    timeoutMs: intFlag(values, 'timeout', 1),
    maxQueue: intFlag(values, 'max-queue', 0),
    drainTimeoutMs: intFlag(values, 'drain-timeout', 0),
    maxHeapMb: intFlag(values, 'max-heap-mb', 16),
    batchMs: intFlag(values, 'batch-ms', 0, 60_000),
    curve: curveFromFlags(values),
    uploadStore: values['upload-store'] as string | undefined,
    logger,
  });
  try {
    if (brubeck !== undefined) checkBrubeckEndpoints(brubeck);
    await service.start();
    if (adminAddr) admin = await startAdmin(service.adminSource(), adminAddr, logger);
  } catch (err) {
    if (err instanceof StartupError) {
      await service.close();
      throw err;
    }
    let message = (err as Error).message;
    const cause = (err as Error).cause;
    // A routes module that did not load: say where its SyntaxError is, drop our own import path.
    if (modulePath !== undefined && cause instanceof Error && message.startsWith('cannot load routes module')) {
      message = `cannot load routes module ${modulePath}: ${moduleLoadReason(cause, resolve(modulePath))}`;
    }
    logger.fatal({ err: message }, 'service failed to start');
    // Supervised, the parent prints the reason (once, however many services fail the same way).
    if (!(await report({ m2gate: 'failed', reason: message }))) process.stderr.write(`m2gate service: ${message}\n`);
    process.exitCode = 1;
    return;
  }
  await report({ m2gate: 'started' });
  if (connectFile !== undefined) reloadOnHangup(() => service.reloadGateways(), logger);
  drainOnSignals(async () => {
    const drained = await service.close();
    await admin?.close();
    return drained;
  }, logger);
}
