/** What crosses between the service's main thread and its piscina workers. */
import type { HeaderMap } from '../protocol/m2-request.js';
import type { AbortShared } from './abort-protocol.js';
import type { UploadedFile } from './upload-body.js';

/**
 * Bytes for a task or a result: what crosses to or from a worker thread goes through here.
 * Posting a view copies its whole ArrayBuffer, and views are everywhere: a small Buffer is a
 * view of Buffer's shared 8 KiB pool (a 100-byte reply crossed as 8 KiB), a link BATCH's
 * messages are views of the batch. When most of the buffer behind a view is not its own, a
 * copy of just its bytes crosses instead; a view that is (nearly) its whole buffer is passed
 * as it is.
 */
export function ownBytes(view: Uint8Array): Buffer {
  if (view.buffer.byteLength > 2 * view.byteLength) return Buffer.from(new Uint8Array(view).buffer);
  return Buffer.isBuffer(view) ? view : Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

export interface WorkerConfig {
  /** file: URL of the user's compiled routes module. */
  routesModule: string;
  /** The BroadcastChannel name on which webSocketSend() reaches this service's main thread (ws-routes.ts). */
  wsChannel: string;
  /** The cooperative abort's shared memory and channel (abort-protocol.ts). */
  abort: AbortShared;
}

export interface DescribeTask {
  kind: 'describe';
}

export interface RunTask {
  kind: 'run';
  /** Never reused; the abort flag names it (abort-protocol.ts). */
  id: number;
  /** The task's cells in the abort protocol's shared arrays. */
  slot: number;
  /** Index into the routes module's entries, in definition order. */
  route: number;
  params: Record<string, string>;
  /**
   * The Mongrel2 request message as received; the thread parses it again. Copying these bytes
   * to the thread costs far less than cloning the parsed header map (measured: structured
   * clone of the map was the main thread's largest cost per request).
   */
  frame: Uint8Array;
  /** A HEAD request: send the head of the GET response only. */
  head: boolean;
  /** The body is this temp file (an async upload to a route that takes them); the message's body is empty. */
  upload?: UploadedFile | undefined;
}

/** Several run tasks for one thread, run in order (task-batcher.ts). */
export interface BatchTask {
  kind: 'batch';
  tasks: RunTask[];
}

/** A task of a batch that failed outside its route (the route's own throw is a 500 result). */
export interface TaskFailure {
  failed: string;
}

export interface BatchResult {
  /** One per task of the batch, in its order. */
  results: Array<RunResult | TaskFailure>;
}

export interface DescribeResult {
  routes: Array<{ pattern: string; timeoutMs: number | undefined; uploads: boolean; ws?: { open: boolean; message: boolean; close: boolean; background: boolean } }>;
}

/** One event of a WebSocket route's connection (ws-routes.ts → ws-worker.ts). */
export interface WsTask {
  kind: 'ws';
  event: 'open' | 'message' | 'close';
  route: number;
  connId: number;
  sender: string;
  /** The gateway it came through (front.ts). */
  origin: number;
  path: string;
  params: Record<string, string>;
  headers: HeaderMap;
  /** message: the payload. */
  data: Uint8Array;
  /** message: a binary frame (else text). */
  binary: boolean;
  /** close: the code and reason it ended with. */
  code: number;
  reason: string;
}

/** Where a frame a handler sent goes: its own connection, ids, or every connection of the route. */
export type WsTarget = 'self' | 'route' | number[];

export interface WsOutput {
  to: WsTarget;
  /** A whole server frame. */
  frame: Uint8Array;
}

export interface WsResult {
  /** open: false when the route refused; `refusal` is then the HTTP response. */
  accepted: boolean;
  refusal?: Uint8Array;
  out: WsOutput[];
  /** The handler called ws.close(code, reason). */
  close?: { code: number; reason: string };
  thread: number;
  errorId?: string;
  error?: string;
}

export interface RunResult {
  status: number;
  /** The complete Mongrel2 reply message (envelope + HTTP response), ready to publish. */
  reply: Uint8Array;
  thread: number;
  /** Epoch ms (sub-ms precision) when the worker started and finished the task. */
  startedAt: number;
  finishedAt: number;
  /** Set when the handler threw: the id is in the response body and the log. */
  errorId?: string;
  error?: string;
  /** The task was aborted before or while running; its reply must not be sent. */
  aborted?: boolean;
}

export type WorkerTask = DescribeTask | RunTask | BatchTask | WsTask;
