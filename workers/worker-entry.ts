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
import { parseRequest } from '../protocol/m2-request.js';
import { parseQuery } from '../protocol/method-router.js';
import { readServiceRoutes, type ServiceRouteEntry, type ServiceRequest } from './service-routes.js';
import { textResponse, toHttpResponse } from './result.js';
import { AbortListener } from './abort-worker.js';
import type { BatchResult, DescribeResult, RunResult, RunTask, WorkerConfig, WorkerTask, WsResult } from './task.js';
import { runWsTask } from './ws-worker.js';

const config = workerData as WorkerConfig;
const aborts = new AbortListener(config.abort);

let loaded: Promise<ServiceRouteEntry[]> | undefined;
function routes(): Promise<ServiceRouteEntry[]> {
  loaded ??= import(config.routesModule).then((mod: { default?: unknown }) => readServiceRoutes(mod.default));
  return loaded;
}

const now = (): number => performance.timeOrigin + performance.now();

async function runTask(task: RunTask): Promise<RunResult> {
  const startedAt = now();
  const base = { thread: threadId, startedAt };
  // Aborted while it waited in the queue: never start it.
  if (aborts.start(task.slot, task.id)) {
    return { ...base, status: 0, reply: new Uint8Array(0), finishedAt: now(), aborted: true };
  }
  const entry = (await routes())[task.route];
  if (entry === undefined) throw new M2gateError(ERROR_CODES.MODULE, `no route #${task.route} in the routes module`);
  // The main thread parsed this message already: it cannot fail here.
  const req = parseRequest(Buffer.from(task.frame.buffer, task.frame.byteOffset, task.frame.byteLength));
  const { headers } = req;
  const signal = aborts.track(task.slot, task.id);
  const request: ServiceRequest = {
    method: typeof headers.METHOD === 'string' ? headers.METHOD : 'GET',
    path: req.path,
    params: task.params,
    query: typeof headers.QUERY === 'string' ? parseQuery(headers.QUERY) : {},
    headers,
    body: req.body,
    connId: req.connId,
    sender: req.sender,
    signal,
  };
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
  const reply = encodeReply(req.sender, req.connId, bytes);
  const result: RunResult = { ...base, status, reply, finishedAt: now() };
  if (errorId !== undefined) {
    result.errorId = errorId;
    result.error = error;
  }
  if (signal.aborted) result.aborted = true;
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
    const entries = await routes();
    return { routes: entries.map(({ pattern, timeoutMs, uploads, ws }) => ({ pattern, timeoutMs, uploads, ...(ws ? { ws: { open: ws.open !== undefined, message: ws.message !== undefined, close: ws.close !== undefined, background: ws.background === true } } : {}) })) };
  }
  if (task.kind === 'ws') {
    const entry = (await routes())[task.route];
    if (entry?.ws === undefined) throw new M2gateError(ERROR_CODES.MODULE, `no WebSocket route #${task.route} in the routes module`);
    return runWsTask(task, entry);
  }
  if (task.kind === 'batch') return runBatch(task.tasks);
  return runTask(task);
}
