/**
 * The shape of `/status.json` on the admin listener: what the dashboard
 * draws, and a stable interface for scripts. Fields are only ever added
 * (`version` changes if one is removed or changes meaning); README
 * "Operating m2gate" documents each.
 */
import type { WindowSnapshot } from './latency-window.js';

export type { WindowSnapshot } from './latency-window.js';

export const STATUS_VERSION = 1;

export type RouteKind = 'app' | 'handler' | 'dir' | 'proxy';

export interface ServiceStatus {
  /** The service's name as it registered (hostname/pid), or the pool's peer number over PUSH/SUB. */
  name: string;
  up: boolean;
  threads: number;
  /** Requests it holds now, and the credit it has left. */
  held: number;
  creditFree: number;
  /** ms since the gateway last heard from it. */
  lastHeardMs: number;
  /** Said BYE: finishing what it holds, taking nothing new. */
  leaving: boolean;
}

export interface HandlerStatus {
  /** The Handler's send_spec, which names it in mongrel2.conf. */
  name: string;
  transport: 'link' | 'mongrel2';
  /** Route patterns that reach it. */
  routes: string[];
  /** At least one service can take requests. */
  up: boolean;
  /** Connected services (link: registered; PUSH/SUB: connected peers). */
  connected: number;
  /** link only: each registered service. Empty over PUSH/SUB, which cannot tell peers apart. */
  services: ServiceStatus[];
  threads: number;
  creditHeld: number;
  creditFree: number;
  inFlight: number;
  queueDepth: number;
  /** The last minute of requests answered through this Handler. */
  window: WindowSnapshot;
  /** Since start: answers the gateway gave itself, by status. */
  errors: { '502': number; '503': number; '504': number };
  retries: number;
}

export interface RestartRecord {
  /** ISO time the death was seen. */
  at: string;
  /** The Handler the service served (its send_spec). */
  handler: string;
  pid: number | undefined;
  code: number | null;
  signal: string | null;
  restartInMs: number;
}

export interface GatewayStatus {
  version: typeof STATUS_VERSION;
  role: 'gateway';
  pid: number;
  startedAt: string;
  now: string;
  ready: boolean;
  /** Why not ready (empty when ready). */
  notReady: string[];
  inFlight: number;
  /** Since start. */
  requests: number;
  /** The last minute, all routes and by route kind. */
  window: WindowSnapshot;
  byKind: Record<RouteKind, WindowSnapshot>;
  handlers: HandlerStatus[];
  /** The start command's supervised services, newest first (at most 20). */
  restarts: RestartRecord[];
}
