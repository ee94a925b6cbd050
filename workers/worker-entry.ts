/**
 * The piscina worker: every line of this file runs in a worker thread.
 *
 * It loads the user's routes module itself, inside a promise, so a module that
 * fails to load rejects tasks instead of leaving piscina with no threads (a
 * measured pitfall). ZeroMQ never enters this thread.
 */
import { threadId, workerData } from 'node:worker_threads';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';
import { encodeReply } from '../protocol/m2-reply.js';
import { parseRequest, type HeaderMap } from '../protocol/m2-request.js';
import { parseQuery } from '../protocol/method-router.js';
import { readServiceRoutes, type ServiceRouteEntry, type ServiceRequest } from './service-routes.js';
import type { UploadedFile } from './upload-body.js';
import { textResponse, toHttpResponse } from './result.js';
import { AbortListener, type RunningTask } from './abort-worker.js';
import { ownBytes, type BatchResult, type DescribeResult, type RunResult, type RunTask, type WorkerConfig, type WorkerTask, type WsResult } from './task.js';
import { runWsTask } from './ws-worker.js';

const config = workerData as WorkerConfig;
const aborts = new AbortListener(config.abort);

let loaded: Promise<ServiceRouteEntry[]> | undefined;
/** The entries once loaded: a task then finds its route without awaiting a settled promise. */
let entries: ServiceRouteEntry[] | undefined;
function routes(): Promise<ServiceRouteEntry[]> {
  loaded ??= import(config.routesModule).then((mod: { default?: unknown }) => (entries = readServiceRoutes(mod.default)));
  return loaded;
}

const now = (): number => performance.timeOrigin + performance.now();

/**
 * What a route handler receives. A class, so that `signal` can be made on first use
 * (abort-worker.ts says what an AbortSignal costs) without an accessor in an object
 * literal, which V8 builds on its slow path too. `signal` is therefore on the prototype:
 * `{ ...req }` does not copy it.
 */
class LiveServiceRequest implements ServiceRequest {
  readonly method: string;
  readonly path: string;
  readonly params: Record<string, string>;
  readonly query: Record<string, string | string[]>;
  readonly headers: HeaderMap;
  readonly body: Buffer;
  readonly connId: number;
  readonly sender: string;
  declare upload?: UploadedFile;
  readonly #running: RunningTask;

  constructor(headers: HeaderMap, path: string, params: Record<string, string>, body: Buffer, connId: number, sender: string, running: RunningTask) {
    this.method = typeof headers.METHOD === 'string' ? headers.METHOD : 'GET';
    this.path = path;
    this.params = params;
    this.query = typeof headers.QUERY === 'string' ? parseQuery(headers.QUERY) : {};
    this.headers = headers;
    this.body = body;
    this.connId = connId;
    this.sender = sender;
    this.#running = running;
  }

  get signal(): AbortSignal {
    return this.#running.signal;
  }
}

async function runTask(task: RunTask): Promise<RunResult> {
  const startedAt = now();
  // Aborted while it waited in the queue: never start it.
  if (aborts.start(task.slot, task.id)) {
    return { thread: threadId, startedAt, status: 0, reply: new Uint8Array(0), finishedAt: now(), aborted: true };
  }
  const entry = (entries ?? (await routes()))[task.route];
  if (entry === undefined) throw new M2gateError(ERROR_CODES.MODULE, `no route #${task.route} in the routes module`);
  // The main thread parsed this message already: it cannot fail here.
  const req = parseRequest(Buffer.from(task.frame.buffer, task.frame.byteOffset, task.frame.byteLength));
  const running = aborts.track(task.slot, task.id);
  const request = new LiveServiceRequest(req.headers, req.path, task.params, req.body, req.connId, req.sender, running);
  if (task.upload !== undefined) request.upload = task.upload;
  let status: number;
  let bytes: Buffer;
  let errorId: string | undefined;
  let error: string | undefined;
  try {
    const value: unknown = await entry.handler(request);
    ({ status, bytes } = toHttpResponse(value, task.head));
  } catch (err) {
    errorId = randomUUID();
    error = err instanceof Error ? (err.stack ?? err.message) : String(err);
    status = 500;
    bytes = textResponse(500, `Internal Server Error (error id ${errorId})\n`);
  } finally {
    aborts.untrack(task.id);
  }
  const reply = ownBytes(encodeReply(req.sender, req.connId, bytes));
  // One literal of one shape: a spread of a shared base object made V8 migrate maps per task.
  const result: RunResult = { thread: threadId, startedAt, status, reply, finishedAt: now() };
  if (errorId !== undefined) {
    result.errorId = errorId;
    result.error = error;
  }
  if (running.aborted) result.aborted = true;
  return result;
}

/** A batch runs like that many tasks in a row on this thread; one failing costs only itself. */
async function runBatch(tasks: RunTask[]): Promise<BatchResult> {
  const results: BatchResult['results'] = [];
  for (const task of tasks) {
    try {
      results.push(await runTask(task));
    } catch (err) {
      results.push({ failed: err instanceof Error ? err.message : String(err) });
    }
  }
  return { results };
}

export default async function handle(task: WorkerTask): Promise<RunResult | DescribeResult | BatchResult | WsResult> {
  if (task.kind === 'describe') {
    const loadedEntries = await routes();
    return { routes: loadedEntries.map(({ pattern, timeoutMs, uploads, ws }) => ({ pattern, timeoutMs, uploads, ...(ws ? { ws: { open: ws.open !== undefined, message: ws.message !== undefined, close: ws.close !== undefined, background: ws.background === true } } : {}) })) };
  }
  if (task.kind === 'ws') {
    const entry = (await routes())[task.route];
    if (entry?.ws === undefined) throw new M2gateError(ERROR_CODES.MODULE, `no WebSocket route #${task.route} in the routes module`);
    return runWsTask(task, entry);
  }
  if (task.kind === 'batch') return runBatch(task.tasks);
  return runTask(task);
}
