/**
 * `Expect: 100-continue` (RFC 9110 §10.1.1) answered by the target, not by node:http. node sends
 * `100 Continue` as soon as the head is parsed unless the server listens for 'checkContinue', and
 * a client then sends a body the target may refuse (413 for a declared length over its limit).
 * The gateway listens, marks the response with awaitContinue() and routes as usual; a target
 * calls sendContinue() right before it reads the body. Everything answered before that (503,
 * hygiene's 400s, 404, 413) goes out as the final status with no 100, and node closes the
 * connection after it (it does so for any final status sent without the 100).
 */
import type { ServerResponse } from 'node:http';

/** Responses whose client waits for `100 Continue` and has not had it. */
const waiting = new WeakSet<ServerResponse>();

/** Marks `res` as answering a request that came with `Expect: 100-continue` ('checkContinue'). */
export function awaitContinue(res: ServerResponse): void {
  waiting.add(res);
}

/** Sends `100 Continue` if `res`'s client waits for it; a no-op otherwise, and the second time. */
export function sendContinue(res: ServerResponse): void {
  if (waiting.delete(res) && !res.headersSent && !res.destroyed) res.writeContinue();
}
