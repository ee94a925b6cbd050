/**
 * Mongrel2 reply messages, handler → front (mongrel2-protocol.md §4.1):
 *
 *     SENDER SP LEN ":" [ "X" SP ] ID *( SP ID ) [ SP ] "," SP BODY
 *
 * An empty BODY means "close these connections" (§4.3). With the `X` marker
 * the body is a tnetstring `[name, args]` control message (§4.7).
 */
import { ERROR_CODES, ProtocolError } from './errors.js';
import { decode, type TnetValue } from './tnetstring.js';

export interface M2Reply {
  sender: string;
  ids: number[];
  /** A view into the parsed message. Empty (and not extended) means close. */
  body: Buffer;
  /** The id list started with `X `: the body is a control message. */
  extended: boolean;
}

export interface ParseReplyOptions {
  /** Most ids in one reply. Defaults to 128, Mongrel2's `limits.handler_targets`. */
  maxIds?: number;
}

export const REPLY_DEFAULTS = { maxIds: 128 } as const;

const SPACE = 0x20;
const COLON = 0x3a;
const COMMA = 0x2c;
const MAX_ID_DIGITS = 15;
// Mongrel2 rejects any other sender byte, and then the client never gets its reply (§4.1).
const SENDER_RE = /^[A-Za-z0-9-]+$/;

function fail(message: string, offset: number): never {
  throw new ProtocolError(ERROR_CODES.REPLY, message, offset);
}

function isSenderByte(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d;
}

/**
 * Parses one reply with Mongrel2's own acceptance rules (§4.1): exact netstring
 * length, a space after the comma, 1..maxIds ids of digits (leading zeros
 * allowed), one optional trailing space inside the list.
 *
 * @throws ProtocolError (code M2G_ERR_REPLY, with the byte offset).
 */
export function parseReply(buf: Buffer, options?: ParseReplyOptions): M2Reply {
  const maxIds = options?.maxIds ?? REPLY_DEFAULTS.maxIds;
  let i = 0;
  while (i < buf.length && isSenderByte(buf[i]!)) i++;
  if (i === 0) fail('sender must be one or more of [A-Za-z0-9-]', 0);
  if (buf[i] !== SPACE) fail('sender must be followed by one space', i);
  const sender = buf.toString('latin1', 0, i);

  // The id netstring: digits ':' list ','
  let p = i + 1;
  let len = 0;
  const lenStart = p;
  while (p < buf.length && buf[p]! >= 0x30 && buf[p]! <= 0x39 && p - lenStart < 9) len = len * 10 + (buf[p++]! - 0x30);
  if (p === lenStart) fail('expected the id netstring length', p);
  if (buf[p] !== COLON) fail("expected ':' after the id netstring length", p);
  const listStart = p + 1;
  const listEnd = listStart + len;
  if (listEnd >= buf.length || buf[listEnd] !== COMMA) fail('id netstring length does not match its contents', lenStart);
  if (buf[listEnd + 1] !== SPACE) fail("expected a space after the id list's ','", listEnd + 1);

  let q = listStart;
  let extended = false;
  if (buf[q] === 0x58 /* X */ && buf[q + 1] === SPACE) {
    extended = true;
    q += 2;
  }
  const ids: number[] = [];
  while (q < listEnd) {
    const idStart = q;
    let n = 0;
    while (q < listEnd && buf[q]! >= 0x30 && buf[q]! <= 0x39) n = n * 10 + (buf[q++]! - 0x30);
    if (q === idStart) fail('expected a connection id (digits)', q);
    if (q - idStart > MAX_ID_DIGITS) fail('connection id too long', idStart);
    ids.push(n);
    if (ids.length > maxIds) fail(`more than ${maxIds} ids in one reply`, idStart);
    if (q < listEnd) {
      if (buf[q] !== SPACE) fail('ids must be separated by one space', q);
      q++;
    }
  }
  if (ids.length === 0) fail('reply names no connection id', listStart);
  return { sender, ids, body: buf.subarray(listEnd + 2), extended };
}

/** An empty, non-extended reply closes its connections (§4.3). */
export function isCloseReply(reply: M2Reply): boolean {
  return reply.body.length === 0 && !reply.extended;
}

function checkIds(ids: readonly number[]): void {
  if (ids.length === 0) fail('a reply needs at least one id', 0);
  if (ids.length > REPLY_DEFAULTS.maxIds) fail(`more than ${REPLY_DEFAULTS.maxIds} ids in one reply`, 0);
  for (const id of ids) if (!Number.isSafeInteger(id) || id < 0) fail(`invalid connection id ${id}`, 0);
}

function checkSender(sender: string): void {
  if (!SENDER_RE.test(sender)) fail(`sender '${sender}' must match [A-Za-z0-9-]+ or Mongrel2 drops the reply`, 0);
}

/**
 * Encodes a reply addressed to one or more connection ids. An empty body makes
 * the close message.
 *
 * @throws ProtocolError (code M2G_ERR_REPLY) for a sender outside
 *   [A-Za-z0-9-]+, no ids, more than 128, or an id that is not a
 *   non-negative safe integer.
 */
export function encodeReply(sender: string, ids: number | readonly number[], body: Uint8Array | string = EMPTY): Buffer {
  return encodeWithList(sender, typeof ids === 'number' ? [ids] : ids, '', body);
}

/** The close message for `ids`: `SENDER LEN:IDS, ` (§4.3). */
export function encodeClose(sender: string, ids: number | readonly number[]): Buffer {
  return encodeReply(sender, ids, EMPTY);
}

/**
 * An extended reply `SENDER LEN:X IDS, [name, args]` (§4.7), e.g.
 * `encodeControl(s, 12, ['ctl', { 'keep-alive': true }])`. The body must be
 * a tnetstring list of exactly two elements, the first a string.
 */
export function encodeControl(sender: string, ids: number | readonly number[], body: Uint8Array): Buffer {
  decodeControl(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
  return encodeWithList(sender, typeof ids === 'number' ? [ids] : ids, 'X ', body);
}

/**
 * Validates and decodes the body of an extended reply as `[name, args]`.
 *
 * @throws ProtocolError (code M2G_ERR_REPLY).
 */
export function decodeControl(body: Buffer): { name: string; args: TnetValue } {
  let value: TnetValue;
  try {
    value = decode(body, { strings: 'utf8', maxDepth: 8 });
  } catch (err) {
    return fail(`extended reply body is not a tnetstring: ${(err as Error).message}`, 0);
  }
  if (!Array.isArray(value) || value.length !== 2) fail('extended reply body must be a list [name, args]', 0);
  const [name, args] = value;
  if (typeof name !== 'string') fail('extended reply body must be a list [name, args]', 0);
  return { name, args: args! };
}

const EMPTY = Buffer.alloc(0);

function encodeWithList(sender: string, ids: readonly number[], marker: string, body: Uint8Array | string): Buffer {
  checkSender(sender);
  checkIds(ids);
  const list = marker + ids.join(' ');
  const head = `${sender} ${list.length}:${list}, `;
  const bodyBytes = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
  const buf = Buffer.allocUnsafe(head.length + bodyBytes);
  buf.write(head, 0, 'latin1');
  if (typeof body === 'string') buf.write(body, head.length, 'utf8');
  else buf.set(body, head.length);
  return buf;
}
