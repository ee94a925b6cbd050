/** Turns what a route handler returned into HTTP response bytes. Runs in the worker. */
import { buildResponse } from '../protocol/http-response.js';
import { toResponseInit } from '../protocol/route-result.js';

/**
 * @throws M2gateError (M2G_ERR_HTTP_RESPONSE) when the handler's status or
 *   headers are invalid (CR/LF in a value, ...): the caller turns it into a 500.
 */
export function toHttpResponse(value: unknown, head: boolean): { status: number; bytes: Buffer } {
  const init = toResponseInit(value);
  return { status: init.status, bytes: buildResponse(init, { head }) };
}

/** A short text/plain response, as the service's own 4xx/5xx answers. */
export function textResponse(status: number, text: string, extra: Record<string, string> = {}, head = false): Buffer {
  return buildResponse({ status, headers: { 'Content-Type': 'text/plain; charset=utf-8', ...extra }, body: text }, { head });
}
