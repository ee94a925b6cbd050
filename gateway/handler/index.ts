// Handler targets: what a `Handler(...)` route of mongrel2.conf is served by.

// The dispatch the gateway routes to (timeouts, 503/413/504, client gone)
export { HandlerDispatch, type HandlerDispatchOptions, type HandlerDispatchStats } from './handler-dispatch.js';

// The pools, one per transport, and what both offer
export type { HandlerTarget, PoolView } from './handler-target.js';
export { PushSubPool } from './push-sub-pool.js';
export { LinkPool, type LinkOptions, type LinkStats } from './link-pool.js';

// Replies: routing by connection id, relaying to node:http
export { nextConnId, type HandlerPoolStats, type ReplySink } from './reply-dispatch.js';

// Service calls from app routes (ctx.call / ctx.send)
export { serviceCall, type CallInit, type CallReply, type CallTarget } from './service-call.js';
