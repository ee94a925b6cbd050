/**
 * The brubeck-service wire format (docs/brubeck-service-wire.md): the messages
 * a Brubeck `ServiceClientMixin` client and a brubeck-service service exchange
 * over PUSH/PULL (requests) and ROUTER/DEALER (responses). Not the Mongrel2
 * handler protocol.
 *
 * A message is the client's sender id, then `t(x)` fields (`<byte length>:<bytes>`,
 * no trailing comma) separated by single spaces, then a tail of `t(json(…))`
 * fields with no separator:
 *
 *     request  (0.1.3): sender conn_id request_ts passphrase origin_sender_id origin_conn_id
 *                       origin_out_addr handle_response path method ⏎ arguments headers body
 *     response (0.1.3): sender conn_id request_ts start_ts end_ts passphrase origin_sender_id
 *                       origin_conn_id origin_out_addr handle_response path method ⏎
 *                       status_code status_msg arguments headers body
 *
 * 0.1.0 is the same without `handle_response`. Brubeck parses the header with
 * `split(' ', N)`, so a value containing a space breaks it there; this decoder
 * reads every field by its length instead (it accepts anything a real peer can
 * write, spaces included, and tells 0.1.0 from 0.1.3 by the number of fields),
 * and the encoders refuse a header value containing a space, which a real peer
 * would misparse. Tail fields are parsed by length on both sides, so they may
 * contain anything (the capture's `status_msg` has spaces).
 *
 * Header fields are protocol tokens: decoded as latin1 (every byte kept, so a
 * message re-encodes byte for byte), encoded from strings whose code points are
 * at most U+00FF. Tail fields stay bytes (JSON text, views into the input).
 */
import { ERROR_CODES, ProtocolError } from './errors.js';

export const BRUBECK_VERSIONS = { V0_1_0: '0.1.0', V0_1_3: '0.1.3' } as const;
export type BrubeckVersion = (typeof BRUBECK_VERSIONS)[keyof typeof BRUBECK_VERSIONS];

/** Fields of a service request (client → service). */
export interface BrubeckRequest {
  version: BrubeckVersion;
  /** The client's sender id: its response DEALER's identity (uuid4 hex). */
  sender: string;
  /** Correlates the response (uuid4 hex per request). */
  connId: string;
  /** Milliseconds since the epoch, as decimal digits. */
  requestTs: string;
  passphrase: string;
  originSenderId: string;
  originConnId: string;
  originOutAddr: string;
  /** 0.1.3: the client routes the response to its own handler by path. Always false in 0.1.0. */
  handleResponse: boolean;
  path: string;
  /** `request` on the way out. */
  method: string;
  /** JSON text (a dict). Decoded: a view into the message. */
  arguments: Buffer;
  headers: Buffer;
  body: Buffer;
}

/** Fields of a service response (service → client). */
export interface BrubeckResponse extends BrubeckRequest {
  startTs: string;
  endTs: string;
  /** JSON text: a number. */
  statusCode: Buffer;
  /** JSON text: a string. */
  statusMsg: Buffer;
}

/** What the encoders take: tail fields as JSON text (string, utf8) or bytes. */
export type Json = string | Uint8Array;
export type BrubeckRequestFields = Omit<BrubeckRequest, 'arguments' | 'headers' | 'body'> & { arguments: Json; headers: Json; body: Json };
export type BrubeckResponseFields = Omit<BrubeckResponse, 'arguments' | 'headers' | 'body' | 'statusCode' | 'statusMsg'> & {
  arguments: Json;
  headers: Json;
  body: Json;
  statusCode: Json;
  statusMsg: Json;
};

export interface BrubeckDecodeOptions {
  /** Largest message, in bytes. Defaults to 64 MiB. */
  maxBytes?: number;
  /** Only accept this version. Defaults to either (told apart by the field count). */
  version?: BrubeckVersion;
}

export const BRUBECK_DEFAULTS = { maxBytes: 64 * 1024 * 1024 } as const;

/** Digits of a length prefix: 9, as the reference tnetstring parser caps them (999,999,999). */
const MAX_DIGITS = 9;
const SPACE = 0x20;
const COLON = 0x3a;

function invalid(message: string, offset: number): never {
  throw new ProtocolError(ERROR_CODES.BRUBECK, message, offset);
}

interface Split {
  sender: string;
  head: Buffer[];
  tail: Buffer[];
  /** Byte offset of each head field, for errors. */
  offsets: number[];
}

/** Reads `<digits>:<bytes>` at `pos`; returns the payload's [start, end). */
function field(buf: Buffer, pos: number): [number, number] {
  let n = 0;
  let i = pos;
  for (; i < buf.length && buf[i] !== COLON; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) invalid('expected a length prefix (digits, then :)', i);
    if (i - pos >= MAX_DIGITS) invalid(`length prefix longer than ${MAX_DIGITS} digits`, pos);
    if (i > pos && n === 0) invalid('length prefix with a leading zero', pos);
    n = n * 10 + d;
  }
  if (i === pos) invalid('expected a length prefix (digits, then :)', pos);
  if (i >= buf.length) invalid('length prefix without ":"', pos);
  const start = i + 1;
  if (start + n > buf.length) invalid(`field of ${n} bytes runs past the end of the message`, pos);
  return [start, start + n];
}

function split(buf: Buffer, options: BrubeckDecodeOptions | undefined): Split {
  const maxBytes = options?.maxBytes ?? BRUBECK_DEFAULTS.maxBytes;
  if (buf.length > maxBytes) invalid(`message of ${buf.length} bytes exceeds maxBytes (${maxBytes})`, 0);
  const sp = buf.indexOf(SPACE);
  if (sp <= 0) invalid('expected the sender id and a space', Math.max(sp, 0));
  const head: Buffer[] = [];
  const offsets: number[] = [];
  const tail: Buffer[] = [];
  let pos = sp + 1;
  // Header fields are each followed by one space; the first field that is not
  // starts the tail, whose fields follow each other directly up to the end.
  while (pos < buf.length) {
    const at = pos;
    const [start, end] = field(buf, pos);
    pos = end;
    if (tail.length === 0 && buf[pos] === SPACE) {
      head.push(buf.subarray(start, end));
      offsets.push(at);
      pos++;
      continue;
    }
    if (buf[pos] === SPACE) invalid('a space after a concatenated field', pos);
    tail.push(buf.subarray(start, end));
  }
  return { sender: buf.toString('latin1', 0, sp), head, tail, offsets };
}

function versionOf(s: Split, counts: Record<BrubeckVersion, number>, tailCount: number, what: string, options: BrubeckDecodeOptions | undefined): BrubeckVersion {
  const version = s.head.length === counts['0.1.3'] ? '0.1.3' : s.head.length === counts['0.1.0'] ? '0.1.0' : undefined;
  if (version === undefined || s.tail.length !== tailCount) {
    invalid(`a ${what} has ${counts['0.1.3']} (0.1.3) or ${counts['0.1.0']} (0.1.0) space-separated fields then ${tailCount} concatenated; got ${s.head.length} then ${s.tail.length}`, 0);
  }
  if (options?.version !== undefined && options.version !== version) invalid(`a ${version} ${what}, but ${options.version} is required`, 0);
  return version;
}

function flag(s: Split, i: number): boolean {
  const v = s.head[i]!;
  if (v.length === 1 && (v[0] === 0x30 || v[0] === 0x31)) return v[0] === 0x31;
  return invalid('handle_response must be 0 or 1', s.offsets[i]!);
}

/**
 * Decodes a service request, either version.
 *
 * @throws ProtocolError (code M2G_ERR_BRUBECK, never incomplete: messages
 *   arrive whole) on any deviation from the format, or over `maxBytes`.
 */
export function decodeBrubeckRequest(buf: Buffer, options?: BrubeckDecodeOptions): BrubeckRequest {
  const s = split(buf, options);
  const version = versionOf(s, { '0.1.3': 9, '0.1.0': 8 }, 3, 'request', options);
  const h = (i: number): string => s.head[i]!.toString('latin1');
  const v13 = version === '0.1.3';
  const p = v13 ? 7 : 6;
  return {
    version,
    sender: s.sender,
    connId: h(0),
    requestTs: h(1),
    passphrase: h(2),
    originSenderId: h(3),
    originConnId: h(4),
    originOutAddr: h(5),
    handleResponse: v13 ? flag(s, 6) : false,
    path: h(p),
    method: h(p + 1),
    arguments: s.tail[0]!,
    headers: s.tail[1]!,
    body: s.tail[2]!,
  };
}

/**
 * Decodes a service response, either version.
 *
 * @throws ProtocolError (code M2G_ERR_BRUBECK) as {@link decodeBrubeckRequest}.
 */
export function decodeBrubeckResponse(buf: Buffer, options?: BrubeckDecodeOptions): BrubeckResponse {
  const s = split(buf, options);
  const version = versionOf(s, { '0.1.3': 11, '0.1.0': 10 }, 5, 'response', options);
  const h = (i: number): string => s.head[i]!.toString('latin1');
  const v13 = version === '0.1.3';
  const p = v13 ? 9 : 8;
  return {
    version,
    sender: s.sender,
    connId: h(0),
    requestTs: h(1),
    startTs: h(2),
    endTs: h(3),
    passphrase: h(4),
    originSenderId: h(5),
    originConnId: h(6),
    originOutAddr: h(7),
    handleResponse: v13 ? flag(s, 8) : false,
    path: h(p),
    method: h(p + 1),
    statusCode: s.tail[0]!,
    statusMsg: s.tail[1]!,
    arguments: s.tail[2]!,
    headers: s.tail[3]!,
    body: s.tail[4]!,
  };
}

function token(name: string, value: string): string {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === SPACE) invalid(`${name} contains a space: Brubeck peers split the header on spaces and would misparse it`, i);
    if (c > 0xff) invalid(`${name} has a character above U+00FF (header fields are bytes; percent-encode it)`, i);
  }
  return value;
}

function encode(sender: string, head: Array<[string, string]>, tail: Json[]): Buffer {
  if (sender.length === 0) invalid('sender must not be empty', 0);
  token('sender', sender);
  // Measure, allocate once, write.
  const heads = head.map(([name, value]) => token(name, value));
  const tails = tail.map((t) => (typeof t === 'string' ? Buffer.from(t, 'utf8') : t));
  let size = sender.length;
  for (const v of heads) size += 1 + String(v.length).length + 1 + v.length;
  size += 1;
  for (const t of tails) size += String(t.byteLength).length + 1 + t.byteLength;
  const out = Buffer.allocUnsafe(size);
  let pos = out.write(sender, 0, 'latin1');
  for (const v of heads) pos += out.write(` ${v.length}:${v}`, pos, 'latin1');
  out[pos++] = SPACE;
  for (const t of tails) {
    pos += out.write(`${t.byteLength}:`, pos, 'latin1');
    out.set(t, pos);
    pos += t.byteLength;
  }
  return out;
}

function origin(f: BrubeckRequestFields | BrubeckResponseFields): Array<[string, string]> {
  return [
    ['originSenderId', f.originSenderId],
    ['originConnId', f.originConnId],
    ['originOutAddr', f.originOutAddr],
    ...(f.version === '0.1.3' ? [['handleResponse', f.handleResponse ? '1' : '0'] as [string, string]] : []),
    ['path', f.path],
    ['method', f.method],
  ];
}

/**
 * Encodes a service request in `fields.version` (0.1.0 drops handleResponse).
 *
 * @throws ProtocolError (code M2G_ERR_BRUBECK) when the sender is empty or a
 *   header value contains a space or a character above U+00FF.
 */
export function encodeBrubeckRequest(fields: BrubeckRequestFields): Buffer {
  return encode(
    fields.sender,
    [['connId', fields.connId], ['requestTs', fields.requestTs], ['passphrase', fields.passphrase], ...origin(fields)],
    [fields.arguments, fields.headers, fields.body],
  );
}

/**
 * Encodes a service response in `fields.version`.
 *
 * @throws ProtocolError (code M2G_ERR_BRUBECK) as {@link encodeBrubeckRequest}.
 */
export function encodeBrubeckResponse(fields: BrubeckResponseFields): Buffer {
  return encode(
    fields.sender,
    [
      ['connId', fields.connId],
      ['requestTs', fields.requestTs],
      ['startTs', fields.startTs],
      ['endTs', fields.endTs],
      ['passphrase', fields.passphrase],
      ...origin(fields),
    ],
    [fields.statusCode, fields.statusMsg, fields.arguments, fields.headers, fields.body],
  );
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses one JSON tail field. Object keys that could reach Object.prototype
 * (`__proto__`, `constructor`) are refused.
 *
 * @throws ProtocolError (code M2G_ERR_BRUBECK) on invalid UTF-8 or JSON, or
 *   such a key; `name` is the field, for the message.
 */
export function parseBrubeckJson(view: Uint8Array, name: string): unknown {
  let text: string;
  try {
    text = UTF8.decode(view);
  } catch {
    return invalid(`${name} is not valid UTF-8`, 0);
  }
  let bad: string | undefined;
  let value: unknown;
  try {
    value = JSON.parse(text, (key: string, v: unknown) => {
      if (key === '__proto__' || key === 'constructor') bad ??= key;
      return v;
    });
  } catch (err) {
    return invalid(`${name} is not JSON: ${(err as Error).message}`, 0);
  }
  if (bad !== undefined) invalid(`${name} has a '${bad}' key`, 0);
  return value;
}
