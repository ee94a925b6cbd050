/**
 * WebSocket framing (RFC 6455 §5) as the gateway needs it to stand in for
 * Mongrel2 (mongrel2-protocol.md §3.9): client frames are parsed, unmasked and
 * reassembled into messages whose FLAGS header is the first frame byte with FIN
 * forced on; server frames are built by handlers (unmasked) and copied to the
 * client untouched.
 *
 * Written here rather than taken from `ws`: the gateway must see the raw first
 * byte of each message (FLAGS, RSV bits included) and must pass a handler's
 * frames through byte for byte, which `ws` hides behind its message events;
 * the codec is small and its rules are the ones we test against Mongrel2.
 *
 * Where it is stricter than Mongrel2 1.12.2 (which checks only the mask, the
 * fragmented control frame and the control frame length):
 * - RSV bits set (no extension is ever negotiated) → 1002;
 * - a continuation frame with no message to continue, or a new data frame
 *   inside a fragmented one → 1002;
 * - an unknown opcode → 1002;
 * - a text message that is not UTF-8 → 1007;
 * - a message over `maxMessageBytes` → 1009, checked from each frame's
 *   declared length before its payload is buffered.
 */
import { createHash } from 'node:crypto';
import { isUtf8 } from 'node:buffer';

export const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export const OPCODES = { CONTINUATION: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

/** Close codes the parser fails with (RFC 6455 §7.4.1). */
export const CLOSE_CODES = { NORMAL: 1000, GOING_AWAY: 1001, PROTOCOL_ERROR: 1002, INVALID_DATA: 1007, TOO_BIG: 1009 } as const;

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key: what Mongrel2 sends as the handshake body. */
export function acceptKey(key: string): string {
  return createHash('sha1').update(key + WS_GUID).digest('base64');
}

/** The FLAGS header of a message: `0x` and upper-case hex of its first byte with FIN on (`0x81`). */
export function flagsHeader(firstByte: number): string {
  return `0x${((firstByte | 0x80) & 0xff).toString(16).toUpperCase().padStart(2, '0')}`;
}

/** The opcode of a FLAGS header, or undefined when it is not `0x` and two hex digits. */
export function flagsOpcode(flags: string): number | undefined {
  if (!/^0x[0-9A-Fa-f]{2}$/.test(flags)) return undefined;
  return Number.parseInt(flags.slice(2), 16) & 0x0f;
}

export interface EncodeFrameOptions {
  /** Default true. False for every fragment but the last. */
  fin?: boolean;
  /** A 4-byte masking key: clients must mask, servers must not. */
  mask?: Uint8Array;
}

/** One frame. @throws RangeError for an opcode outside 0..15 or a mask that is not 4 bytes. */
export function encodeFrame(opcode: number, payload: Uint8Array | string = new Uint8Array(0), options: EncodeFrameOptions = {}): Buffer {
  if (!Number.isInteger(opcode) || opcode < 0 || opcode > 15) throw new RangeError(`opcode ${opcode} is not 0..15`);
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const { mask } = options;
  if (mask !== undefined && mask.length !== 4) throw new RangeError('a masking key is 4 bytes');
  const len = data.byteLength;
  const extra = len < 126 ? 0 : len < 0x10000 ? 2 : 8;
  const headLen = 2 + extra + (mask ? 4 : 0);
  const out = Buffer.allocUnsafe(headLen + len);
  out[0] = (options.fin === false ? 0 : 0x80) | opcode;
  const maskBit = mask ? 0x80 : 0;
  if (extra === 0) out[1] = maskBit | len;
  else if (extra === 2) {
    out[1] = maskBit | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = maskBit | 127;
    out.writeBigUInt64BE(BigInt(len), 2);
  }
  if (mask) {
    out.set(mask, 2 + extra);
    for (let i = 0; i < len; i++) out[headLen + i] = data[i]! ^ mask[i & 3]!;
  } else {
    out.set(data, headLen);
  }
  return out;
}

/** A close frame's payload: the code, then the UTF-8 reason (at most 123 bytes are kept). */
export function closePayload(code: number, reason = ''): Buffer {
  const text = Buffer.from(reason, 'utf8').subarray(0, 123);
  const out = Buffer.allocUnsafe(2 + text.length);
  out.writeUInt16BE(code, 0);
  out.set(text, 2);
  return out;
}

export interface FrameParserEvents {
  /** A whole message (data messages reassembled) or a control frame, payload unmasked. */
  onMessage(firstByte: number, payload: Buffer): void;
  /** The client broke the protocol: nothing more is parsed; close with `code`. */
  onError(code: number, reason: string): void;
}

export interface FrameParserOptions {
  /** Largest message (all fragments together), in bytes. */
  maxMessageBytes: number;
  /** Client frames must be masked (default true); a client-side parser sets false. */
  requireMask?: boolean;
}

/**
 * Incremental parser of one direction of a connection. push() may be given
 * any slicing of the byte stream; after an error it ignores further input.
 */
export class FrameParser {
  readonly #events: FrameParserEvents;
  readonly #max: number;
  readonly #requireMask: boolean;
  #buf: Buffer = Buffer.alloc(0);
  /** First byte and payloads of a data message in fragments. */
  #fragFirst = -1;
  #frags: Buffer[] = [];
  #fragBytes = 0;
  #failed = false;

  constructor(events: FrameParserEvents, options: FrameParserOptions) {
    this.#events = events;
    this.#max = options.maxMessageBytes;
    this.#requireMask = options.requireMask ?? true;
  }

  get failed(): boolean {
    return this.#failed;
  }

  push(chunk: Buffer): void {
    if (this.#failed) return;
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    while (!this.#failed && this.#frame()) {
      // one frame taken
    }
  }

  #fail(code: number, reason: string): false {
    this.#failed = true;
    this.#buf = Buffer.alloc(0);
    this.#frags = [];
    this.#events.onError(code, reason);
    return false;
  }

  /** Takes one frame off the buffer; false when more bytes are needed (or it failed). */
  #frame(): boolean {
    const b = this.#buf;
    if (b.length < 2) return false;
    const b0 = b[0]!;
    const b1 = b[1]!;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    const control = opcode >= 0x8;
    if ((b0 & 0x70) !== 0) return this.#fail(CLOSE_CODES.PROTOCOL_ERROR, 'RSV bits set without an extension');
    if (opcode > 0xa || (opcode > 0x2 && opcode < 0x8)) return this.#fail(CLOSE_CODES.PROTOCOL_ERROR, `unknown opcode ${opcode}`);
    if (masked !== this.#requireMask) return this.#fail(CLOSE_CODES.PROTOCOL_ERROR, masked ? 'a server frame must not be masked' : 'a client frame must be masked');
    let len = b1 & 0x7f;
    if (control && (!fin || len > 125)) return this.#fail(CLOSE_CODES.PROTOCOL_ERROR, 'a control frame must be whole and at most 125 bytes');
    let at = 2;
    if (len === 126) {
      if (b.length < 4) return false;
      len = b.readUInt16BE(2);
      at = 4;
    } else if (len === 127) {
      if (b.length < 10) return false;
      const big = b.readBigUInt64BE(2);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) return this.#fail(CLOSE_CODES.TOO_BIG, 'frame length out of range');
      len = Number(big);
      at = 10;
    }
    if (!control) {
      if (opcode === OPCODES.CONTINUATION && this.#fragFirst < 0) return this.#fail(CLOSE_CODES.PROTOCOL_ERROR, 'a continuation frame with no message to continue');
      if (opcode !== OPCODES.CONTINUATION && this.#fragFirst >= 0) return this.#fail(CLOSE_CODES.PROTOCOL_ERROR, 'a new message inside a fragmented one');
      // Refused from the declared length, before any of the payload is held.
      if (this.#fragBytes + len > this.#max) return this.#fail(CLOSE_CODES.TOO_BIG, `message over ${this.#max} bytes`);
    }
    const maskAt = at;
    if (masked) at += 4;
    if (b.length < at + len) return false;
    const payload = Buffer.from(b.subarray(at, at + len));
    if (masked) {
      for (let i = 0; i < len; i++) payload[i] = payload[i]! ^ b[maskAt + (i & 3)]!;
    }
    this.#buf = b.subarray(at + len);
    if (control) return this.#emit(b0, payload);
    if (opcode !== OPCODES.CONTINUATION) this.#fragFirst = b0;
    this.#frags.push(payload);
    this.#fragBytes += len;
    if (!fin) return true;
    const first = this.#fragFirst;
    const message = this.#frags.length === 1 ? this.#frags[0]! : Buffer.concat(this.#frags, this.#fragBytes);
    this.#fragFirst = -1;
    this.#frags = [];
    this.#fragBytes = 0;
    if ((first & 0x0f) === OPCODES.TEXT && !isUtf8(message)) return this.#fail(CLOSE_CODES.INVALID_DATA, 'a text message that is not UTF-8');
    return this.#emit(first, message);
  }

  #emit(firstByte: number, payload: Buffer): boolean {
    if ((firstByte & 0x0f) === OPCODES.CLOSE && payload.length === 1) return this.#fail(CLOSE_CODES.PROTOCOL_ERROR, 'a close frame with a 1-byte payload');
    this.#events.onMessage(firstByte, payload);
    return true;
  }
}
