/** What crosses between the service's main thread and its piscina workers. */
import type { HeaderMap } from '../protocol/m2-request.js';
import type { AbortShared } from './abort-protocol.js';
import type { UploadedFile } from './upload-body.js';

export interface WorkerConfig {
  /** file: URL of the user's compiled routes module. */
  routesModule: string;
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
  method: string;
  path: string;
  params: Record<string, string>;
  headers: HeaderMap;
  body: Uint8Array;
  connId: number;
  sender: string;
  /** A HEAD request: send the head of the GET response only. */
  head: boolean;
  /** The body is this temp file (an async upload to a route that takes them); `body` is empty. */
  upload?: UploadedFile | undefined;
}

export interface DescribeResult {
  routes: Array<{ pattern: string; timeoutMs: number | undefined; uploads: boolean }>;
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

export type WorkerTask = DescribeTask | RunTask;
