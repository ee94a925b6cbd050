/** What crosses between the service's main thread and its piscina workers. */
import type { HeaderMap } from '../protocol/m2-request.js';

export interface WorkerConfig {
  /** file: URL of the user's compiled routes module. */
  routesModule: string;
  /** One Int32 slot per in-flight task; the main thread stores a task's id there to abort it. */
  abortFlags: SharedArrayBuffer;
  /** One Int32 slot per in-flight task: the threadId running it (0 while queued), so the main thread can terminate that thread. */
  runningOn: SharedArrayBuffer;
  /** BroadcastChannel name on which the main thread announces aborts, to wake async handlers. */
  abortChannel: string;
}

export interface DescribeTask {
  kind: 'describe';
}

export interface RunTask {
  kind: 'run';
  id: number;
  slot: number;
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
}

export interface DescribeResult {
  routes: Array<{ pattern: string; timeoutMs: number | undefined }>;
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
