/** Turns what a route handler returned into HTTP response bytes. Runs in the worker. */
import { buildResponse, type ResponseInit } from '../protocol/http-response.js';
import type { ServiceResponse } from './routes.js';

const RESPONSE_KEYS = new Set(['status', 'headers', 'body']);

/**
 * A returned object is a full response only when its keys are a subset of
 * status/headers/body and `status` is an HTTP status; any other object is data.
 */
function isResponse(value: unknown): value is ServiceResponse {
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array || Array.isArray(value)) return false;
  const status = (value as { status?: unknown }).status;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) return false;
  return Object.keys(value).every((k) => RESPONSE_KEYS.has(k));
}

function bodyInit(body: unknown, headers: Record<string, string | number | readonly string[]>): ResponseInit['body'] {
  const has = (name: string): boolean => Object.keys(headers).some((k) => k.toLowerCase() === name);
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') {
    if (!has('content-type')) headers['Content-Type'] = 'text/plain; charset=utf-8';
    return body;
  }
  if (body instanceof Uint8Array) {
    if (!has('content-type')) headers['Content-Type'] = 'application/octet-stream';
    return body;
  }
  if (!has('content-type')) headers['Content-Type'] = 'application/json';
  return JSON.stringify(body);
}

/**
 * @throws M2gateError (M2G_ERR_HTTP_RESPONSE) when the handler's status or
 *   headers are invalid (CR/LF in a value, ...): the caller turns it into a 500.
 */
export function toHttpResponse(value: unknown, head: boolean): { status: number; bytes: Buffer } {
  if (value === undefined) return { status: 204, bytes: buildResponse({ status: 204 }, { head }) };
  if (isResponse(value)) {
    const headers = { ...value.headers };
    const body = bodyInit(value.body, headers);
    return { status: value.status, bytes: buildResponse({ status: value.status, headers, body }, { head }) };
  }
  const headers: Record<string, string> = {};
  const body = bodyInit(value, headers);
  return { status: 200, bytes: buildResponse({ status: 200, headers, body }, { head }) };
}

/** A short text/plain response, as the service's own 4xx/5xx answers. */
export function textResponse(status: number, text: string, extra: Record<string, string> = {}, head = false): Buffer {
  return buildResponse({ status, headers: { 'Content-Type': 'text/plain; charset=utf-8', ...extra }, body: text }, { head });
}
