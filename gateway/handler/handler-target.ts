/**
 * What the gateway needs of a Handler pool, whichever transport serves it:
 * PUSH/SUB (push-sub-pool.ts) or the m2gate link (link-pool.ts). The dispatch
 * (handler-dispatch.ts) and service calls (service-call.ts) see only this.
 */
import type { HeaderEncoding, RequestFields } from '../../protocol/m2-request.js';
import type { ConfigHandler } from '../../protocol/mongrel2-conf.js';
import type { HandlerPoolStats, ReplySink } from './reply-dispatch.js';
import type { ServiceStatus } from '../../admin/status.js';

/** What the admin listener shows of one registered service (link only): /status.json's own shape. */
export type PoolServiceView = ServiceStatus;

/** A pool as the dashboard and /metrics see it, read when asked (nothing is kept for it per request). */
export interface PoolView {
  connected: number;
  services: PoolServiceView[];
  threads: number;
  creditHeld: number;
  creditFree: number;
  queueDepth: number;
  retries: number;
  /** 503s for no credit in time or a full queue (link). */
  queueRejected: number;
  /** 502s because the service holding the request died (link). */
  serviceLost: number;
  /** The latest metrics report of each live link service (protocol/m2gate-link.md, METRICS). */
  reports: Array<{ service: string; metrics: unknown[] }>;
}

export interface HandlerTarget {
  readonly config: ConfigHandler;
  readonly stats: HandlerPoolStats;
  readonly encoding: HeaderEncoding;
  /** True while at least one handler process can take requests. */
  readonly hasPeers: boolean;
  /** Requests sent (or queued) and not yet released. */
  readonly pending: number;
  whenPeer(): Promise<void>;
  view(): PoolView;
  bind(): Promise<void>;
  /**
   * Sends a request; replies for `fields.connId` go to `sink` until it is
   * released. Returns false when it cannot be taken (the caller answers 503).
   */
  send(fields: Omit<RequestFields, 'sender'>, sink: ReplySink): boolean;
  /** Stops routing replies for `connId` (its response is complete). */
  release(connId: number): void;
  /**
   * `connId` became a WebSocket: its replies keep going to its sink, and
   * sendMore() sends its later messages to the same handler (over the link, the
   * service that took its handshake), until release() or disconnect().
   */
  hold(connId: number): void;
  /** A later message of a connection sent with send() (a WebSocket frame). False when it cannot go. */
  sendMore(fields: Omit<RequestFields, 'sender'>, sink: ReplySink): boolean;
  /** The client went away or timed out: tell the handler (§3.6). */
  disconnect(connId: number): void;
  /** `bytes` of `connId`'s reply reached the client: the download credits notice (§3.7). */
  credits(connId: number, bytes: number): void;
  close(flushTimeoutMs?: number): Promise<void>;
}
