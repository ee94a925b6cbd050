/**
 * The error registry. Every failure m2gate reports has a stable `code`
 * (`M2G_ERR_…`) that callers match on, an HTTP `statusCode` where one applies,
 * and an optional `cause`. The README lists every code with what to do about it.
 */

export const ERROR_CODES = {
  /** A tnetstring is malformed, truncated, or over a configured limit. */
  TNETSTRING: 'M2G_ERR_TNETSTRING',
  /** A Mongrel2 request message (front → handler) is malformed. */
  REQUEST: 'M2G_ERR_REQUEST',
  /** A Mongrel2 reply message (handler → front) is malformed. */
  REPLY: 'M2G_ERR_REPLY',
  /** The HTTP response a handler wrote is malformed or would split a response. */
  HTTP_RESPONSE: 'M2G_ERR_HTTP_RESPONSE',
  /** A mongrel2.conf file has a syntax or semantic error. */
  CONFIG: 'M2G_ERR_CONFIG',
  /** ctx.call/ctx.send: the path is not served by a Handler route. */
  NO_ROUTE: 'M2G_ERR_NO_ROUTE',
  /** No handler process is connected to the pool (503). */
  NO_HANDLER: 'M2G_ERR_NO_HANDLER',
  /** No complete reply within the deadline (504). */
  CALL_TIMEOUT: 'M2G_ERR_CALL_TIMEOUT',
  /** An app route did not answer within its deadline (504); its `req.signal` fired. */
  APP_TIMEOUT: 'M2G_ERR_APP_TIMEOUT',
  /** The call was aborted, normally because the outer client went away. */
  CALL_ABORTED: 'M2G_ERR_CALL_ABORTED',
  /** The handler's reply was not a valid HTTP response (502). */
  BAD_REPLY: 'M2G_ERR_BAD_REPLY',
  /** A message on the m2gate link does not follow protocol/m2gate-link.md. */
  LINK: 'M2G_ERR_LINK',
  /** The service holding the request died before answering it and it could not be retried (502). */
  SERVICE_LOST: 'M2G_ERR_SERVICE_LOST',
  /** A brubeck-service message (docs/brubeck-service-wire.md) is malformed, or a value cannot travel in one. */
  BRUBECK: 'M2G_ERR_BRUBECK',
} as const;

export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

export interface M2gateErrorOptions {
  statusCode?: number;
  cause?: unknown;
}

/** Base class of every error m2gate throws on purpose. */
export class M2gateError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number | undefined;

  constructor(code: ErrorCode, message: string, options: M2gateErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'M2gateError';
    this.code = code;
    this.statusCode = options.statusCode;
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
