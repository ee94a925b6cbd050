/**
 * The error registry. Every failure m2gate reports has a stable `code`
 * (`M2G_ERR_…`) that callers match on; the registry binds to each code its HTTP
 * status (where one applies), the log level it deserves, and a one-line doc,
 * as fastify's `createError(code, message, status)` does. `M2gateError` takes
 * its `statusCode` and `level` from here, so a code never travels with two
 * statuses. The README lists every code with what to do about it, and
 * test/error-registry.test.ts checks that the two agree.
 */

/** pino's level names: what to log an error at. */
export type ErrorLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/** One registry entry. `status` is absent for codes that never become an HTTP answer. */
export interface ErrorSpec {
  readonly code: `M2G_ERR_${string}`;
  readonly status?: number;
  /** 'warn' for bad input from a peer or a caller, 'error' for a fault on our side or a start that fails. */
  readonly level: ErrorLevel;
  readonly doc: string;
}

export const ERRORS = {
  TNETSTRING: { code: 'M2G_ERR_TNETSTRING', level: 'warn', doc: 'A tnetstring is malformed, truncated, or over a configured limit.' },
  REQUEST: { code: 'M2G_ERR_REQUEST', status: 400, level: 'warn', doc: 'A Mongrel2 request message (front → handler) is malformed, or ctx.call was given one that cannot be written.' },
  REPLY: { code: 'M2G_ERR_REPLY', level: 'warn', doc: 'A Mongrel2 reply message (handler → front) is malformed.' },
  HTTP_RESPONSE: { code: 'M2G_ERR_HTTP_RESPONSE', level: 'warn', doc: 'The HTTP response a handler wrote is malformed or would split a response.' },
  CONFIG: { code: 'M2G_ERR_CONFIG', level: 'error', doc: 'A mongrel2.conf file (or a file the configuration names) has a syntax or semantic error.' },
  NO_ROUTE: { code: 'M2G_ERR_NO_ROUTE', status: 404, level: 'warn', doc: 'ctx.call/ctx.send: the path is not served by a Handler route (or the Brubeck service is not named).' },
  NO_HANDLER: { code: 'M2G_ERR_NO_HANDLER', status: 503, level: 'warn', doc: 'No handler process is connected to the pool, or none could take the call in time.' },
  CALL_TIMEOUT: { code: 'M2G_ERR_CALL_TIMEOUT', status: 504, level: 'warn', doc: 'No complete reply within the deadline.' },
  APP_TIMEOUT: { code: 'M2G_ERR_APP_TIMEOUT', status: 504, level: 'warn', doc: "An app route did not answer within its deadline; its `req.signal` fired." },
  CALL_ABORTED: { code: 'M2G_ERR_CALL_ABORTED', level: 'info', doc: 'The call was aborted, normally because the outer client went away.' },
  BAD_REPLY: { code: 'M2G_ERR_BAD_REPLY', status: 502, level: 'warn', doc: "The handler's reply was not a valid HTTP response." },
  LINK: { code: 'M2G_ERR_LINK', level: 'warn', doc: 'A message on the m2gate link does not follow protocol/m2gate-link.md.' },
  SERVICE_LOST: { code: 'M2G_ERR_SERVICE_LOST', status: 502, level: 'error', doc: 'The service holding the request died before answering it and it could not be retried.' },
  BRUBECK: { code: 'M2G_ERR_BRUBECK', status: 400, level: 'warn', doc: 'A brubeck-service message (docs/brubeck-service-wire.md) is malformed, or a value cannot travel in one.' },
  OPTION: { code: 'M2G_ERR_OPTION', level: 'error', doc: 'An option given through the API is out of range or contradicts another (workers, credit, endpoints...).' },
  MODULE: { code: 'M2G_ERR_MODULE', level: 'error', doc: 'A routes or app module failed to load, or its default export is not an object of routes.' },
  UPLOAD: { code: 'M2G_ERR_UPLOAD', status: 400, level: 'warn', doc: 'An upload-done message names a file the service may not read: outside its upload store, not of its template, or the two upload headers differ.' },
  USAGE: { code: 'M2G_ERR_USAGE', level: 'error', doc: 'The command line is wrong (an unknown flag, a missing or malformed value); the CLI exits 2.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorKey = keyof typeof ERRORS;

/** Each registry key to its code string (`ERROR_CODES.CALL_TIMEOUT === 'M2G_ERR_CALL_TIMEOUT'`). */
export const ERROR_CODES = Object.freeze(
  Object.fromEntries(Object.entries(ERRORS).map(([key, spec]) => [key, spec.code])),
) as { readonly [K in ErrorKey]: (typeof ERRORS)[K]['code'] };

export type ErrorCode = (typeof ERRORS)[ErrorKey]['code'];

const BY_CODE = new Map<string, ErrorSpec>(Object.values(ERRORS).map((spec: ErrorSpec) => [spec.code, spec]));

/** The registry entry for a code. */
export function errorSpec(code: ErrorCode): ErrorSpec {
  return BY_CODE.get(code)!;
}

export interface M2gateErrorOptions {
  cause?: unknown;
}

/** Base class of every error m2gate throws on purpose; its status and level come from the registry. */
export class M2gateError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number | undefined;
  readonly level: ErrorLevel;

  constructor(code: ErrorCode, message: string, options: M2gateErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'M2gateError';
    this.code = code;
    const spec = errorSpec(code);
    this.statusCode = spec.status;
    this.level = spec.level;
  }
}

/**
 * Thrown by every byte-level decoder in `protocol/`. `offset` is the byte
 * position in the input where the problem was found. `incomplete` is true
 * only for incremental parsers that need more bytes to decide.
 */
export class ProtocolError extends M2gateError {
  readonly offset: number;

  constructor(code: ErrorCode, message: string, offset: number, options: M2gateErrorOptions = {}) {
    super(code, `${message} (at byte ${offset})`, options);
    this.name = 'ProtocolError';
    this.offset = offset;
  }
}
