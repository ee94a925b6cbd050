/**
 * The one shape of every target a route of mongrel2.conf can name (Handler,
 * Dir, Proxy): the gateway routes a request to it and is done. Each target
 * answers, including its own errors, and never throws or rejects.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** What the route table matched, for the target that serves it. */
export interface RouteHit {
  /** The matched route's prefix (`/static/`): Dir serves the path below it. */
  prefix: string;
  /** The matched route key: a Handler's PATTERN header (§3.2). */
  pattern: string;
  /** The raw request path, without the query. */
  path: string;
}

export interface RouteTarget {
  /** For metrics and logs: which kind of route answered. */
  readonly kind: 'handler' | 'dir' | 'proxy';
  /** Serves `req`: always ends or destroys `res`; settles once it is done with it. */
  serve(req: IncomingMessage, res: ServerResponse, hit: RouteHit): Promise<void> | void;
}
