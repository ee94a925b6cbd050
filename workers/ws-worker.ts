/**
 * The worker-thread side of WebSocket routes (`'WS /path'`, service-routes.ts):
 * one event of one connection (open, message, close) run through the route's
 * handler, with a `ws` whose sends are collected while the handler runs and
 * returned with its result, so that the main thread (ws-routes.ts) sends them
 * in order, after the 101 for open. A send made after the handler settled (a
 * timer, a promise resolved later) and webSocketSend() from any thread go
 * through the service's BroadcastChannel instead, as they come.
 */
import { BroadcastChannel, isMainThread, threadId, workerData } from 'node:worker_threads';
import { randomUUID } from 'node:crypto';
import { closePayload, encodeFrame, OPCODES } from '../protocol/ws-frame.js';
import { parseQuery } from '../protocol/method-router.js';
import { buildResponse } from '../protocol/http-response.js';
import { toResponseInit } from '../protocol/route-result.js';
import type { ServiceRouteEntry, WebSocketConnection, WebSocketRef } from './service-routes.js';
import { ownBytes, type WorkerConfig, type WsOutput, type WsResult, type WsTask } from './task.js';

/** What webSocketSend() posts on the service's channel (ws-routes.ts reads it). */
export interface WsChannelMessage {
  to: WebSocketRef[];
  /** Instead of `to`: every connection open on this route (its index). */
  route?: { index: number };
  frame: Uint8Array;
  /** The frame is a close frame: the connections are closed after it. */
  close?: boolean;
}

let channel: BroadcastChannel | undefined;

function post(message: WsChannelMessage): void {
  const name = isMainThread ? undefined : (workerData as Partial<WorkerConfig> | null)?.wsChannel;
  if (name === undefined) throw new Error('webSocketSend() works on the worker threads of an m2gate service');
  if (!channel) {
    channel = new BroadcastChannel(name);
    // A channel keeps its thread alive; the thread's tasks are what should.
    channel.unref();
  }
  channel.postMessage({ ...message, frame: ownBytes(message.frame) });
}

/** A text (string) or binary (bytes) frame. */
export function dataFrame(data: string | Uint8Array): Buffer {
  return typeof data === 'string' ? encodeFrame(OPCODES.TEXT, data) : encodeFrame(OPCODES.BINARY, data);
}

/**
 * Sends a message to WebSocket connections of this service from any of its
 * worker threads, at any time (in a handler or not): `to` is a connection's
 * `ws.ref` or several (one multi-id reply per front). Connections that are not
 * open any more are skipped by the service.
 */
export function webSocketSend(to: WebSocketRef | readonly WebSocketRef[], data: string | Uint8Array): void {
  post({ to: Array.isArray(to) ? [...(to as WebSocketRef[])] : [to as WebSocketRef], frame: dataFrame(data) });
}

/** Closes WebSocket connections of this service from any of its worker threads (close frame, then the close). */
export function webSocketClose(to: WebSocketRef | readonly WebSocketRef[], code = 1000, reason = ''): void {
  post({ to: Array.isArray(to) ? [...(to as WebSocketRef[])] : [to as WebSocketRef], frame: encodeFrame(OPCODES.CLOSE, closePayload(code, reason)), close: true });
}

/** Runs one event of a WebSocket route on this thread. */
export async function runWsTask(task: WsTask, entry: ServiceRouteEntry): Promise<WsResult> {
  const route = entry.ws!;
  const out: WsOutput[] = [];
  const result: WsResult = { accepted: true, out, thread: threadId };
  const ref: WebSocketRef = { sender: task.sender, id: task.connId, gateway: task.origin };
  let collecting = true;
  const emit = (to: WsOutput['to'], frame: Buffer): void => {
    if (collecting) out.push({ to, frame: ownBytes(frame) });
    else if (to === 'route') post({ to: [], route: { index: task.route }, frame });
    else post({ to: to === 'self' ? [ref] : to.map((id) => ({ sender: ref.sender, id, gateway: task.origin })), frame });
  };
  const ws: WebSocketConnection = {
    id: task.connId,
    sender: task.sender,
    ref,
    path: task.path,
    params: task.params,
    query: typeof task.headers.QUERY === 'string' ? parseQuery(task.headers.QUERY) : {},
    headers: task.headers,
    send: (data) => emit('self', dataFrame(data)),
    broadcast: (data, ids) => emit(ids === undefined ? 'route' : [...ids], dataFrame(data)),
    close: (code = 1000, reason = '') => {
      if (collecting) result.close = { code, reason };
      else post({ to: [ref], frame: encodeFrame(OPCODES.CLOSE, closePayload(code, reason)), close: true });
    },
  };
  try {
    if (task.event === 'open') {
      const req = { method: 'GET', path: task.path, params: task.params, query: ws.query, headers: task.headers, body: Buffer.alloc(0), connId: task.connId, sender: task.sender };
      const verdict: unknown = await route.open?.(ws, req);
      if (verdict === false) refuse(result, { status: 403, body: 'Forbidden\n' });
      else if (verdict !== undefined && verdict !== true) refuse(result, verdict);
    } else if (task.event === 'message') {
      const payload = Buffer.from(task.data.buffer, task.data.byteOffset, task.data.byteLength);
      await route.message?.(ws, task.binary ? payload : payload.toString('utf8'));
    } else {
      await route.close?.(ws, task.code, task.reason);
    }
  } catch (err) {
    result.errorId = randomUUID();
    result.error = err instanceof Error ? (err.stack ?? err.message) : String(err);
    if (task.event === 'open') refuse(result, { status: 500, body: `Internal Server Error (error id ${result.errorId})\n` });
  } finally {
    collecting = false;
  }
  return result;
}

function refuse(result: WsResult, value: unknown): void {
  result.accepted = false;
  result.out.length = 0;
  const init = toResponseInit(value);
  result.refusal = buildResponse({ ...init, headers: { ...init.headers, Connection: 'close' } });
}
