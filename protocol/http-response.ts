/**
 * HTTP/1.x responses as handlers write them. A Mongrel2 reply body is raw response bytes,
 * possibly streamed over several reply messages; an empty body means "close" (§4.3).
 * `buildResponse` is for handlers; `ResponseParser` is for the gateway.
 *
 * The parser is hand-written on purpose: node's llhttp is reachable only through node:http
 * sockets (its `HTTPParser` binding is internal), while the gateway must parse response bytes
 * that arrive piecewise in Mongrel2 reply messages, detached from any socket.
 *
 * Names, values and reason phrases are byte strings (latin1), as in node:http and Fetch's
 * ByteString: decoding is lossless, and the builder rejects characters above U+00FF because
 * latin1-encoding them would truncate (U+010D would become a CR and split the response).
 */
import { STATUS_CODES } from 'node:http';
import { ERROR_CODES, M2gateError, ProtocolError } from './errors.js';

// ---- byte tables --------------------------------------------------------------------------

/** RFC 9110 §5.6.2 tchar: visible ASCII except the delimiters. */
const TCHAR = new Uint8Array(256);
for (let c = 0x21; c < 0x7f; c++) TCHAR[c] = '"(),/:;<=>?@[\\]{}'.includes(String.fromCharCode(c)) ? 0 : 1;
const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 22; c++) HEX['0123456789abcdefABCDEF'.charCodeAt(c)] = c < 16 ? c : c - 6;
const SP = 0x20, HTAB = 0x09, CR = 0x0d, LF = 0x0a;
/** Anything node:http also refuses in a header value: CTLs except HTAB, DEL, chars > U+00FF. */
const BAD_TEXT = /[^\t\x20-\x7e\x80-\xff]/;

function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (TCHAR[s.charCodeAt(i)] !== 1) return false; // > 255 → undefined
  return true;
}

// ---- builder ------------------------------------------------------------------------------

export interface ResponseInit {
  status: number;
  /** Defaults to node:http's `STATUS_CODES[status]` (empty if unknown). */
  reason?: string;
  headers?: Record<string, string | number | readonly string[]> | Iterable<[string, string]>;
  /** Strings are encoded as UTF-8; Content-Length counts bytes. */
  body?: Buffer | Uint8Array | string;
}

function buildError(message: string): never {
  throw new M2gateError(ERROR_CODES.HTTP_RESPONSE, message);
}

function headerPairs(headers: ResponseInit['headers']): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (headers === undefined) return out;
  const source: Iterable<readonly [string, unknown]> =
    Symbol.iterator in headers ? headers : Object.entries(headers);
  for (const [name, value] of source) {
    for (const v of Array.isArray(value) ? (value as unknown[]) : [value]) {
      if (typeof v === 'string') out.push([name, v]);
      else if (typeof v === 'number' && Number.isFinite(v)) out.push([name, String(v)]);
      else buildError(`header ${JSON.stringify(name)} has a value that is not a string or finite number`);
    }
  }
  return out;
}

/**
 * Serialises a complete response: status line, headers, `Content-Length` (added unless the
 * caller gave Content-Length or Transfer-Encoding, or the status forbids it: 1xx, 204, 304),
 * then the body. With Transfer-Encoding the body is written as given (the handler does the
 * chunking and may stream further chunks in later replies, §4.3).
 *
 * @param options.head Response to HEAD: headers describe `body` but no body bytes are written;
 *   a caller's Content-Length is then trusted when no body is given. Defaults to false.
 * @throws M2gateError `HTTP_RESPONSE` for a status outside 100-599, a header name that is not a
 *   token, a reason or value containing CR, LF, NUL, another CTL or a char above U+00FF, a
 *   Content-Length that is not decimal or differs from the body's byte length, both
 *   Content-Length and Transfer-Encoding, a Transfer-Encoding not ending in `chunked`, or a
 *   body (or framing header) on 1xx/204 (body also on 304).
 */
export function buildResponse(init: ResponseInit, options: { head?: boolean } = {}): Buffer {
  const { status, body } = init;
  if (!Number.isInteger(status) || status < 100 || status > 599) buildError(`status must be an integer 100-599, got ${String(status)}`);
  const reason = init.reason ?? STATUS_CODES[status] ?? '';
  if (BAD_TEXT.test(reason)) buildError('reason phrase contains a control character or a character above U+00FF');
  const bodyBytes = body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body, 'utf8') : body.byteLength;
  const interimOr204 = status < 200 || status === 204;
  if ((interimOr204 || status === 304) && bodyBytes > 0) buildError(`a ${status} response cannot have a body`);

  let head = `HTTP/1.1 ${status} ${reason}\r\n`;
  let hasLength = false, hasCoding = false;
  for (const [name, value] of headerPairs(init.headers)) {
    if (!isToken(name)) buildError(`header name ${JSON.stringify(name)} is not an RFC 7230 token`);
    if (BAD_TEXT.test(value)) buildError(`header ${name} contains CR, LF, NUL, another control character or a character above U+00FF`);
    const lower = name.toLowerCase();
    if (lower === 'content-length') {
      hasLength = true;
      const digits = value.replace(/^[ \t]+|[ \t]+$/g, '');
      if (!/^[0-9]{1,15}$/.test(digits)) buildError(`Content-Length ${JSON.stringify(value)} is not a decimal number`);
      const checked = status !== 304 && !(options.head === true && body === undefined);
      if (checked && Number(digits) !== bodyBytes) buildError(`Content-Length ${digits} differs from the body length ${bodyBytes}`);
    } else if (lower === 'transfer-encoding') {
      hasCoding = true;
      if (value.split(',').at(-1)?.trim().toLowerCase() !== 'chunked') buildError('Transfer-Encoding must end with chunked (RFC 9112 §6.1)');
    }
    head += `${name}: ${value}\r\n`;
  }
  if (hasLength && hasCoding) buildError('both Content-Length and Transfer-Encoding given');
  // RFC 9110 §8.6: no Content-Length in 1xx or 204; a 304's describes the selected representation.
  if (interimOr204 && (hasLength || hasCoding)) buildError(`a ${status} response cannot carry Content-Length or Transfer-Encoding`);
  if (!hasLength && !hasCoding && !interimOr204 && status !== 304) head += `Content-Length: ${bodyBytes}\r\n`;
  head += '\r\n';

  // Every char of `head` is <= U+00FF (validated above), so its latin1 length is its byte length.
  const sent = options.head === true ? 0 : bodyBytes;
  const out = Buffer.allocUnsafe(head.length + sent);
  out.write(head, 0, 'latin1');
  if (sent > 0 && body !== undefined) {
    if (typeof body === 'string') out.write(body, head.length, 'utf8');
    else out.set(body, head.length);
  }
  return out;
}

// ---- parser -------------------------------------------------------------------------------

export interface ParsedHead {
  status: number;
  reason: string;
  version: '1.0' | '1.1';
  /** Raw names, latin1 values with OWS trimmed, in arrival order. */
  headers: Array<[string, string]>;
  framing: 'length' | 'chunked' | 'close' | 'none';
  contentLength?: number;
  /** False for `Connection: close`, HTTP/1.0 without keep-alive, close framing, or 101. */
  keepAlive: boolean;
}

export interface ResponseParserEvents {
  onHead(head: ParsedHead): void;
  /** De-chunked body bytes: views into the pushed buffer. Consume synchronously or copy. */
  onBody(chunk: Buffer): void;
  onEnd(): void;
  /** After a 101 head and its onEnd: the raw bytes that follow (views). Without it they throw. */
  onUpgrade?(data: Buffer): void;
}

export interface ResponseParserOptions {
  /** Limit for the head, for each chunk-size line, and for the trailers. Defaults to 65536. */
  maxHeadBytes?: number;
  /** Limit for the header count, and separately for the trailer count. Defaults to 100. */
  maxHeaders?: number;
  /** The request was HEAD: framing is 'none' whatever the headers say. Defaults to false. */
  expectNoBody?: boolean;
}

const STATE = { HEAD: 0, LENGTH: 1, CHUNK_SIZE: 2, CHUNK_DATA: 3, CHUNK_CR: 4, CHUNK_LF: 5, TRAILERS: 6, CLOSE: 7, DONE: 8, UPGRADED: 9, FAILED: 10 } as const;
type State = (typeof STATE)[keyof typeof STATE];

/**
 * Incremental parser for one response. Each event fires synchronously inside `push`/`close`.
 * Head, chunk-size and trailer lines that span pushes are copied; body bytes never are.
 * 1xx other than 101 is rejected: interim responses are Mongrel2's job (§9 `100 Continue`),
 * and a handler answers each request with exactly one response.
 */
export class ResponseParser {
  readonly #events: ResponseParserEvents;
  readonly #maxHeadBytes: number;
  readonly #maxHeaders: number;
  readonly #expectNoBody: boolean;
  #state: State = STATE.HEAD;
  #error: unknown;
  #base = 0; // absolute offset of the current push's first byte
  #pending: Buffer[] = []; // copies of an incomplete line
  #pendingBytes = 0;
  #sectionBytes = 0; // bytes of the current head / chunk-size line / trailer section
  #lineStart = 0;
  #remaining = 0;
  #status = 0;
  #reason = '';
  #version: ParsedHead['version'] = '1.1';
  #fields: Array<[string, string]> = [];
  #fieldCount = 0;
  #head: ParsedHead | undefined;

  constructor(events: ResponseParserEvents, options: ResponseParserOptions = {}) {
    this.#events = events;
    this.#maxHeadBytes = options.maxHeadBytes ?? 65536;
    this.#maxHeaders = options.maxHeaders ?? 100;
    this.#expectNoBody = options.expectNoBody ?? false;
  }

  get done(): boolean { return this.#state === STATE.DONE || this.#state === STATE.UPGRADED; }
  get upgraded(): boolean { return this.#state === STATE.UPGRADED; }
  get head(): ParsedHead | undefined { return this.#head; }
  /** Bytes still expected in the Content-Length body or the current chunk; else undefined. */
  get bytesRemaining(): number | undefined {
    return this.#state === STATE.LENGTH || this.#state === STATE.CHUNK_DATA ? this.#remaining : undefined;
  }

  /**
   * Feeds the next bytes. The parser keeps no reference to `chunk` after returning.
   * @throws ProtocolError `HTTP_RESPONSE` (invalid, never incomplete) on malformed input, on
   *   bytes after the end of the response (one response per request, §4.4), and on every call
   *   after a failure.
   */
  push(chunk: Buffer): void {
    this.#checkUsable();
    try {
      this.#consume(chunk);
      this.#base += chunk.length;
    } catch (err) {
      if (this.#state !== STATE.FAILED) { this.#state = STATE.FAILED; this.#error = err; } // e.g. thrown by an event
      throw err;
    }
  }

  /**
   * The handler's empty "close" reply (§4.3): ends a read-until-close body with onEnd.
   * A no-op after a complete response.
   * @throws ProtocolError `HTTP_RESPONSE` if no complete head was seen, a Content-Length or
   *   chunked body is incomplete, or the parser had failed.
   */
  close(): void {
    this.#checkUsable();
    if (this.#state === STATE.CLOSE) this.#finish(STATE.DONE);
    else if (this.#state === STATE.HEAD) this.#fail('closed before a complete response head', this.#base);
    else if (!this.done) this.#fail('closed before the end of the Content-Length or chunked body', this.#base);
  }

  #checkUsable(): void {
    if (this.#state !== STATE.FAILED) return;
    const offset = this.#error instanceof ProtocolError ? this.#error.offset : this.#base;
    const reason = this.#error instanceof Error ? this.#error.message : 'a non-Error exception';
    throw new ProtocolError(ERROR_CODES.HTTP_RESPONSE, `parser already failed: ${reason}`, offset, { cause: this.#error });
  }

  #fail(message: string, offset: number): never {
    const err = new ProtocolError(ERROR_CODES.HTTP_RESPONSE, message, offset);
    this.#state = STATE.FAILED;
    this.#error = err;
    throw err;
  }

  #consume(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      switch (this.#state) {
        case STATE.HEAD: case STATE.CHUNK_SIZE: case STATE.TRAILERS: {
          const nl = chunk.indexOf(LF, pos);
          if (nl === -1) { this.#stash(chunk, pos); return; }
          this.#line(this.#takeLine(chunk, pos, nl));
          pos = nl + 1;
          break;
        }
        case STATE.LENGTH: case STATE.CHUNK_DATA: {
          const n = Math.min(this.#remaining, chunk.length - pos);
          this.#remaining -= n;
          this.#events.onBody(chunk.subarray(pos, pos + n));
          pos += n;
          if (this.#remaining === 0) {
            if (this.#state === STATE.LENGTH) this.#finish(STATE.DONE);
            else this.#state = STATE.CHUNK_CR;
          }
          break;
        }
        case STATE.CHUNK_CR: case STATE.CHUNK_LF: {
          const byte = chunk[pos];
          if (byte === CR && this.#state === STATE.CHUNK_CR) this.#state = STATE.CHUNK_LF;
          else if (byte === LF) this.#enterLines(STATE.CHUNK_SIZE);
          else this.#fail('chunk data not followed by CRLF', this.#base + pos);
          pos++;
          break;
        }
        case STATE.CLOSE:
          this.#events.onBody(chunk.subarray(pos));
          return;
        case STATE.UPGRADED:
          if (this.#events.onUpgrade === undefined) this.#fail('bytes after a 101 response and no onUpgrade handler', this.#base + pos);
          this.#events.onUpgrade(chunk.subarray(pos));
          return;
        default: // DONE
          this.#fail('bytes after a complete response: a handler may send only one response per request', this.#base + pos);
      }
    }
  }

  #limitError(offset: number): never {
    const what = this.#state === STATE.HEAD ? 'response head' : this.#state === STATE.TRAILERS ? 'trailer section' : 'chunk size line';
    this.#fail(`${what} larger than maxHeadBytes (${this.#maxHeadBytes})`, offset);
  }

  #stash(chunk: Buffer, pos: number): void {
    this.#pendingBytes += chunk.length - pos;
    if (this.#sectionBytes + this.#pendingBytes > this.#maxHeadBytes) this.#limitError(this.#base + pos);
    this.#pending.push(Buffer.from(chunk.subarray(pos))); // copy: the caller may reuse `chunk`
  }

  /** Joins stashed pieces with chunk[pos, nl), strips the CR of CRLF, rejects any other CR. */
  #takeLine(chunk: Buffer, pos: number, nl: number): Buffer {
    this.#lineStart = this.#base + pos - this.#pendingBytes;
    this.#sectionBytes += this.#pendingBytes + nl - pos + 1;
    if (this.#sectionBytes > this.#maxHeadBytes) this.#limitError(this.#base + nl);
    let line = chunk.subarray(pos, nl);
    if (this.#pendingBytes > 0) line = Buffer.concat([...this.#pending, line]);
    this.#pending = [];
    this.#pendingBytes = 0;
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, -1);
    // A bare LF ends a line like CRLF does (RFC 9112 §2.2 lets a recipient accept it), even
    // among CRLF lines: Brubeck joins repeated Set-Cookie headers with "\n" inside an
    // otherwise CRLF head, and Mongrel2 passes that to browsers, which read two cookies. The
    // head is re-emitted with CRLF, so the client never sees a bare LF. A bare CR is still
    // refused below: no recipient agrees on what it means.
    const cr = line.indexOf(CR);
    if (cr !== -1) this.#fail('bare CR in a line', this.#lineStart + cr);
    return line;
  }

  #enterLines(state: State): void {
    this.#state = state;
    this.#sectionBytes = 0;
    this.#fieldCount = 0;
  }

  #line(line: Buffer): void {
    if (this.#state === STATE.CHUNK_SIZE) {
      const size = this.#chunkSize(line);
      if (size === 0) this.#enterLines(STATE.TRAILERS);
      else { this.#remaining = size; this.#state = STATE.CHUNK_DATA; this.#sectionBytes = 0; }
    } else if (this.#state === STATE.HEAD && this.#status === 0) {
      this.#statusLine(line.toString('latin1'));
    } else if (line.length === 0) {
      if (this.#state === STATE.HEAD) this.#endHead();
      else this.#finish(STATE.DONE); // trailers are parsed, then discarded
    } else {
      if (++this.#fieldCount > this.#maxHeaders) this.#fail(`more than maxHeaders (${this.#maxHeaders}) fields`, this.#lineStart);
      const field = this.#field(line);
      if (this.#state === STATE.HEAD) this.#fields.push(field);
    }
  }

  #statusLine(s: string): void {
    const m = /^HTTP\/1\.([01]) ([0-9]{3})(?: (.*))?$/s.exec(s);
    if (m === null) this.#fail(`bad status line ${JSON.stringify(s.slice(0, 64))}`, this.#lineStart);
    const status = Number(m[2]);
    const reason = m[3] ?? '';
    if (status < 100 || status > 599) this.#fail(`status ${status} outside 100-599`, this.#lineStart + 9);
    if (status < 200 && status !== 101) this.#fail(`interim ${status} response not supported from a handler`, this.#lineStart + 9);
    if (reason.includes('\0')) this.#fail('NUL in reason phrase', this.#lineStart + 13 + reason.indexOf('\0'));
    this.#version = m[1] === '0' ? '1.0' : '1.1';
    this.#status = status;
    this.#reason = reason;
  }

  #field(line: Buffer): [string, string] {
    if (line[0] === SP || line[0] === HTAB) this.#fail('obs-fold continuation line (RFC 9112 §5.2)', this.#lineStart);
    let colon = 0;
    while (colon < line.length && TCHAR[line[colon] ?? 0] === 1) colon++;
    if (colon === 0 || line[colon] !== 0x3a) this.#fail('field name is not a token followed by ":"', this.#lineStart + colon);
    let start = colon + 1, end = line.length;
    while (start < end && (line[start] === SP || line[start] === HTAB)) start++;
    while (end > start && (line[end - 1] === SP || line[end - 1] === HTAB)) end--;
    const nul = line.indexOf(0, start);
    if (nul !== -1) this.#fail('NUL in a field value', this.#lineStart + nul);
    return [line.toString('latin1', 0, colon), line.toString('latin1', start, end)];
  }

  #chunkSize(line: Buffer): number {
    let i = 0, size = 0;
    for (; i < line.length; i++) {
      const d = HEX[line[i] ?? 0] ?? -1;
      if (d === -1) break;
      size = size * 16 + d;
      if (size > Number.MAX_SAFE_INTEGER) this.#fail('chunk size too large', this.#lineStart + i);
    }
    if (i === 0) this.#fail('chunk size is not hexadecimal', this.#lineStart);
    while (line[i] === SP || line[i] === HTAB) i++; // BWS before ";" (RFC 9112 §7.1.1)
    if (i < line.length && line[i] !== 0x3b) this.#fail('bad chunk size line', this.#lineStart + i);
    for (; i < line.length; i++) { // chunk-ext: parsed only as far as "no CTLs", then discarded
      const c = line[i] ?? 0;
      if ((c < 0x20 && c !== HTAB) || c === 0x7f) this.#fail('control character in chunk extension', this.#lineStart + i);
    }
    return size;
  }

  #endHead(): void {
    const offset = this.#lineStart;
    let contentLength: number | undefined;
    const codings: string[] = [], connection: string[] = [];
    for (const [name, value] of this.#fields) {
      const lower = name.toLowerCase();
      if (lower === 'content-length') {
        if (!/^[0-9]{1,15}$/.test(value)) this.#fail(`Content-Length ${JSON.stringify(value)} is not a decimal number`, offset);
        if (contentLength !== undefined && contentLength !== Number(value)) this.#fail('repeated Content-Length with different values', offset);
        contentLength = Number(value);
      } else if (lower === 'transfer-encoding') codings.push(...value.split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== ''));
      else if (lower === 'connection') connection.push(...value.split(',').map((c) => c.trim().toLowerCase()));
    }
    const hasCoding = this.#fields.some(([n]) => n.toLowerCase() === 'transfer-encoding');
    if (hasCoding && contentLength !== undefined) this.#fail('both Content-Length and Transfer-Encoding (conflicting framing)', offset);
    if (hasCoding && (codings.at(-1) !== 'chunked' || codings.indexOf('chunked') !== codings.length - 1)) {
      this.#fail('Transfer-Encoding must end with a single chunked', offset);
    }
    const status = this.#status;
    const framing: ParsedHead['framing'] =
      status === 101 || status === 204 || status === 304 || this.#expectNoBody ? 'none'
        : hasCoding ? 'chunked' : contentLength !== undefined ? 'length' : 'close';
    const keepAlive = status !== 101 && framing !== 'close' && !connection.includes('close') &&
      (this.#version === '1.1' || connection.includes('keep-alive'));
    const head: ParsedHead = { status, reason: this.#reason, version: this.#version, headers: this.#fields, framing, keepAlive };
    if (contentLength !== undefined) head.contentLength = contentLength;
    this.#head = head;
    const complete = framing === 'none' || contentLength === 0;
    this.#state = complete ? (status === 101 ? STATE.UPGRADED : STATE.DONE)
      : framing === 'length' ? STATE.LENGTH : framing === 'chunked' ? STATE.CHUNK_SIZE : STATE.CLOSE;
    this.#remaining = contentLength ?? 0;
    this.#sectionBytes = 0;
    this.#events.onHead(head);
    if (complete) this.#events.onEnd();
  }

  #finish(state: State): void {
    this.#state = state;
    this.#events.onEnd();
  }
}
