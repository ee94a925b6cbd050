/**
 * What a route handler (service or app route) may return, turned into a
 * response: a string (text/plain), bytes (application/octet-stream), a full
 * `{ status, headers?, body? }`, `undefined` (204), or any other JSON-able
 * value (application/json).
 */
import type { ResponseInit } from './http-response.js';

export interface RouteResponse {
  status: number;
  headers?: Record<string, string | number | readonly string[]>;
  body?: unknown;
}

const RESPONSE_KEYS = new Set(['status', 'headers', 'body']);

/**
 * A returned object is a full response only when its keys are a subset of
 * status/headers/body and `status` is an HTTP status; any other object is data.
 */
export function isRouteResponse(value: unknown): value is RouteResponse {
  if (typeof value !== 'object' || value === null || value instanceof Uint8Array || Array.isArray(value)) return false;
  const status = (value as { status?: unknown }).status;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 599) return false;
  return Object.keys(value).every((k) => RESPONSE_KEYS.has(k));
}

function withBody(body: unknown, headers: Record<string, string | number | readonly string[]>): ResponseInit['body'] {
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

/** The response for a handler's return value. */
export function toResponseInit(value: unknown): ResponseInit & { headers: Record<string, string | number | readonly string[]> } {
  if (value === undefined) return { status: 204, headers: {} };
  if (isRouteResponse(value)) {
    const headers = { ...value.headers };
    return { status: value.status, headers, body: withBody(value.body, headers) };
  }
  const headers: Record<string, string | number | readonly string[]> = {};
  return { status: 200, headers, body: withBody(value, headers) };
}
