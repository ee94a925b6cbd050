/**
 * tnetstrings: `SIZE ':' DATA TAG`, where SIZE counts bytes (mongrel2-protocol.md §2).
 *
 * Written by hand because no maintained tnetstring package exists on the registry.
 * Everything works on Buffers: sizes are byte counts, never character counts.
 *
 * The decoder is strict where Mongrel2's own parser is lenient or crashes (§2.3):
 * canonical length prefixes only, exact booleans, no trailing bytes, dict keys
 * must be strings, and no duplicate or prototype-polluting keys.
 */
import { ERROR_CODES, ProtocolError } from './errors.js';

export type TnetValue = string | Buffer | number | bigint | boolean | null | TnetList | TnetDict;
export type TnetList = TnetValue[];
export interface TnetDict {
  [key: string]: TnetValue;
}

/** How string (`,`) values come back. Dict keys are always UTF-8 text. */
export type StringMode = 'buffer' | 'utf8' | 'latin1';

export interface DecodeOptions {
  /**
   * `'buffer'` returns views into the input (they alias it: copy them if the
   * input will be reused); `'utf8'` and `'latin1'` return text. Defaults to `'buffer'`.
   */
  strings?: StringMode;
  /** Largest input accepted, in bytes. Defaults to 64 MiB. */
  maxBytes?: number;
  /** Deepest nesting of lists and dicts. Defaults to 32; capped at 1000. */
  maxDepth?: number;
  /** Most digits in a length prefix. Defaults to 9 (sizes up to 999,999,999), as the tnetstring spec. */
  maxLengthDigits?: number;
}

export const TNET_DEFAULTS = {
  strings: 'buffer',
  maxBytes: 64 * 1024 * 1024,
  maxDepth: 32,
  maxLengthDigits: 9,
} as const;

const MAX_DEPTH_CAP = 1000;
const COLON = 0x3a;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const MINUS = 0x2d;

// Keys that would let a decoded dict reach Object.prototype or shadow it.
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor']);

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const FLOAT_TEXT = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

function fail(message: string, offset: number): never {
  throw new ProtocolError(ERROR_CODES.TNETSTRING, message, offset);
}

interface Resolved {
  strings: StringMode;
  maxDepth: number;
  maxLengthDigits: number;
}

function resolve(options: DecodeOptions | undefined, inputLength: number): Resolved {
  const maxBytes = options?.maxBytes ?? TNET_DEFAULTS.maxBytes;
  if (inputLength > maxBytes) fail(`input of ${inputLength} bytes exceeds maxBytes ${maxBytes}`, 0);
  return {
    strings: options?.strings ?? TNET_DEFAULTS.strings,
    maxDepth: Math.min(options?.maxDepth ?? TNET_DEFAULTS.maxDepth, MAX_DEPTH_CAP),
    maxLengthDigits: options?.maxLengthDigits ?? TNET_DEFAULTS.maxLengthDigits,
  };
}

/**
 * Reads the `SIZE:` prefix at `offset` and checks that `SIZE` data bytes plus a
 * tag byte fit before `end`, so no caller ever trusts a declared size beyond
 * the input. Returns the data start; the data ends at `start + size`.
 *
 * @throws ProtocolError (code M2G_ERR_TNETSTRING) on a bad prefix or an overrun.
 */
export function readSize(
  buf: Buffer,
  offset: number,
  end: number,
  maxDigits: number = TNET_DEFAULTS.maxLengthDigits,
): { size: number; start: number } {
  let size = 0;
  let i = offset;
  const digitLimit = Math.min(end, offset + maxDigits);
  while (i < digitLimit) {
    const c = buf[i]!;
    if (c < DIGIT_0 || c > DIGIT_9) break;
    size = size * 10 + (c - DIGIT_0);
    i++;
  }
  if (i === offset) fail('expected a length prefix (digits)', offset);
  if (i >= end) fail('truncated length prefix', i);
  if (buf[i] !== COLON) {
    const c = buf[i]!;
    if (c >= DIGIT_0 && c <= DIGIT_9) fail(`length prefix longer than ${maxDigits} digits`, offset);
    fail("expected ':' after the length prefix", i);
  }
  if (buf[offset] === DIGIT_0 && i - offset > 1) fail('length prefix has a leading zero', offset);
  const start = i + 1;
  // `end - start` is what the input still holds; the tag byte needs one more.
  if (size >= end - start) fail(`declared size ${size} exceeds the remaining input`, offset);
  return { size, start };
}

/**
 * Decodes exactly one tnetstring that spans the whole input.
 *
 * @throws ProtocolError (code M2G_ERR_TNETSTRING, with the byte offset) for
 *   malformed, truncated or over-limit input, or trailing bytes. Nothing else.
 */
export function decode(buf: Buffer, options?: DecodeOptions): TnetValue {
  const opts = resolve(options, buf.length);
  const { value, end } = parseAt(buf, 0, buf.length, opts, 0);
  if (end !== buf.length) fail('trailing bytes after the tnetstring', end);
  return value;
}

/**
 * Decodes one tnetstring that starts at `offset`, and returns it with the
 * offset just past it. Bytes after it are left alone.
 *
 * @throws ProtocolError (code M2G_ERR_TNETSTRING) as {@link decode}.
 */
export function decodePrefix(
  buf: Buffer,
  offset = 0,
  options?: DecodeOptions,
): { value: TnetValue; end: number } {
  const opts = resolve(options, buf.length - offset);
  return parseAt(buf, offset, buf.length, opts, 0);
}

function parseAt(
  buf: Buffer,
  offset: number,
  limit: number,
  opts: Resolved,
  depth: number,
): { value: TnetValue; end: number } {
  const { size, start } = readSize(buf, offset, limit, opts.maxLengthDigits);
  const dataEnd = start + size;
  const tag = buf[dataEnd]!;
  const end = dataEnd + 1;
  switch (tag) {
    case 0x2c /* , */:
      return { value: decodeString(buf, start, dataEnd, opts.strings), end };
    case 0x23 /* # */:
      return { value: parseInteger(buf, start, dataEnd), end };
    case 0x5e /* ^ */:
      return { value: parseFloatData(buf, start, dataEnd), end };
    case 0x21 /* ! */:
      if (size === 4 && buf.toString('latin1', start, dataEnd) === 'true') return { value: true, end };
      if (size === 5 && buf.toString('latin1', start, dataEnd) === 'false') return { value: false, end };
      return fail("boolean must be exactly 'true' or 'false'", start);
    case 0x7e /* ~ */:
      if (size !== 0) fail('null must have size 0', offset);
      return { value: null, end };
    case 0x5d /* ] */: {
      if (depth >= opts.maxDepth) fail(`nesting deeper than maxDepth ${opts.maxDepth}`, offset);
      const list: TnetList = [];
      let i = start;
      while (i < dataEnd) {
        const item = parseAt(buf, i, dataEnd, opts, depth + 1);
        list.push(item.value);
        i = item.end;
      }
      return { value: list, end };
    }
    case 0x7d /* } */: {
      if (depth >= opts.maxDepth) fail(`nesting deeper than maxDepth ${opts.maxDepth}`, offset);
      const dict: TnetDict = {};
      let i = start;
      while (i < dataEnd) {
        const key = readKey(buf, i, dataEnd, opts.maxLengthDigits);
        if (key.end >= dataEnd) fail(`dict key '${key.key}' has no value`, i);
        if (Object.hasOwn(dict, key.key)) fail(`duplicate dict key '${key.key}'`, i);
        const item = parseAt(buf, key.end, dataEnd, opts, depth + 1);
        dict[key.key] = item.value;
        i = item.end;
      }
      return { value: dict, end };
    }
    default:
      return fail(`unknown type tag 0x${tag.toString(16).padStart(2, '0')}`, dataEnd);
  }
}

/**
 * Reads a dict key (a `,` string) at `offset` as UTF-8 text, rejecting keys
 * that could pollute prototypes. Exported for the specialised header-map
 * decoder in m2-request.ts.
 *
 * @throws ProtocolError (code M2G_ERR_TNETSTRING).
 */
export function readKey(
  buf: Buffer,
  offset: number,
  limit: number,
  maxDigits: number = TNET_DEFAULTS.maxLengthDigits,
): { key: string; end: number } {
  const { size, start } = readSize(buf, offset, limit, maxDigits);
  const dataEnd = start + size;
  if (buf[dataEnd] !== 0x2c) fail('dict keys must be strings', dataEnd);
  const key = buf.toString('utf8', start, dataEnd);
  if (FORBIDDEN_KEYS.has(key)) fail(`forbidden dict key '${key}'`, offset);
  return { key, end: dataEnd + 1 };
}

/** Decodes `buf[start, end)` as a string in the requested mode (no copy for 'buffer'). */
export function decodeString(buf: Buffer, start: number, end: number, mode: StringMode): string | Buffer {
  if (mode === 'buffer') return buf.subarray(start, end);
  if (mode === 'latin1') return buf.toString('latin1', start, end);
  return buf.toString('utf8', start, end);
}

function parseInteger(buf: Buffer, start: number, end: number): number | bigint {
  let i = start;
  const negative = buf[i] === MINUS;
  if (negative) i++;
  if (i === end) fail('integer has no digits', start);
  // 15 digits always fit a double exactly; longer ones go through BigInt.
  if (end - i <= 15) {
    let n = 0;
    for (; i < end; i++) {
      const c = buf[i]!;
      if (c < DIGIT_0 || c > DIGIT_9) fail('integer contains a non-digit', i);
      n = n * 10 + (c - DIGIT_0);
    }
    return negative ? -n : n;
  }
  for (let j = i; j < end; j++) {
    const c = buf[j]!;
    if (c < DIGIT_0 || c > DIGIT_9) fail('integer contains a non-digit', j);
  }
  const big = BigInt(buf.toString('latin1', start, end));
  if (big < INT64_MIN || big > INT64_MAX) fail('integer does not fit in 64 bits', start);
  return Number.isSafeInteger(Number(big)) ? Number(big) : big;
}

function parseFloatData(buf: Buffer, start: number, end: number): number {
  const text = buf.toString('latin1', start, end);
  if (!FLOAT_TEXT.test(text)) fail(`invalid float '${text.slice(0, 32)}'`, start);
  return Number(text);
}

// ---------------------------------------------------------------------------
// Encoding: measure the whole value first, allocate once, then write.

/** Values the encoder accepts; `Uint8Array` is written like a Buffer. */
export type EncodableValue =
  | string
  | Uint8Array
  | number
  | bigint
  | boolean
  | null
  | readonly EncodableValue[]
  | { readonly [key: string]: EncodableValue };

function invalid(message: string): never {
  throw new ProtocolError(ERROR_CODES.TNETSTRING, message, 0);
}

function numberText(n: number): { text: string; tag: number } {
  if (!Number.isFinite(n)) invalid(`cannot encode ${n}`);
  // Integers beyond 2^53 lose precision as numbers; callers pass a bigint for those.
  if (Number.isSafeInteger(n)) return { text: String(n), tag: 0x23 };
  return { text: String(n), tag: 0x5e };
}

function digitsOf(n: number): number {
  return n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : n < 10000 ? 4 : String(n).length;
}

/**
 * Data sizes in pre-order, so the write pass reuses them instead of measuring
 * strings twice.
 */
function measure(value: EncodableValue, sizes: number[], depth: number): number {
  if (depth > MAX_DEPTH_CAP) invalid(`value nests deeper than ${MAX_DEPTH_CAP}`);
  const slot = sizes.length;
  sizes.push(0);
  let size: number;
  if (typeof value === 'string') size = Buffer.byteLength(value);
  else if (value instanceof Uint8Array) size = value.byteLength;
  else if (typeof value === 'number') size = numberText(value).text.length;
  else if (typeof value === 'bigint') {
    if (value < INT64_MIN || value > INT64_MAX) invalid('bigint does not fit in 64 bits');
    size = value.toString().length;
  } else if (typeof value === 'boolean') size = value ? 4 : 5;
  else if (value === null) size = 0;
  else if (Array.isArray(value)) {
    size = 0;
    for (const item of value as readonly EncodableValue[]) size += measure(item, sizes, depth + 1);
  } else if (typeof value === 'object') {
    size = 0;
    for (const key of Object.keys(value)) {
      const keyBytes = Buffer.byteLength(key);
      size += digitsOf(keyBytes) + 2 + keyBytes;
      size += measure((value as Record<string, EncodableValue>)[key]!, sizes, depth + 1);
    }
  } else {
    return invalid(`cannot encode a value of type ${typeof value}`);
  }
  if (size > 999_999_999) invalid('value larger than 999,999,999 bytes');
  sizes[slot] = size;
  return digitsOf(size) + 2 + size;
}

function writePrefix(buf: Buffer, offset: number, size: number): number {
  offset += buf.write(String(size), offset, 'latin1');
  buf[offset] = COLON;
  return offset + 1;
}

function write(value: EncodableValue, buf: Buffer, offset: number, sizes: number[], cursor: { i: number }): number {
  const size = sizes[cursor.i++]!;
  offset = writePrefix(buf, offset, size);
  let tag: number;
  if (typeof value === 'string') {
    offset += buf.write(value, offset, 'utf8');
    tag = 0x2c;
  } else if (value instanceof Uint8Array) {
    buf.set(value, offset);
    offset += value.byteLength;
    tag = 0x2c;
  } else if (typeof value === 'number') {
    const n = numberText(value);
    offset += buf.write(n.text, offset, 'latin1');
    tag = n.tag;
  } else if (typeof value === 'bigint') {
    offset += buf.write(value.toString(), offset, 'latin1');
    tag = 0x23;
  } else if (typeof value === 'boolean') {
    offset += buf.write(value ? 'true' : 'false', offset, 'latin1');
    tag = 0x21;
  } else if (value === null) {
    tag = 0x7e;
  } else if (Array.isArray(value)) {
    for (const item of value as readonly EncodableValue[]) offset = write(item, buf, offset, sizes, cursor);
    tag = 0x5d;
  } else {
    for (const key of Object.keys(value)) {
      offset = writePrefix(buf, offset, Buffer.byteLength(key));
      offset += buf.write(key, offset, 'utf8');
      buf[offset++] = 0x2c;
      offset = write((value as Record<string, EncodableValue>)[key]!, buf, offset, sizes, cursor);
    }
    tag = 0x7d;
  }
  buf[offset] = tag;
  return offset + 1;
}

/**
 * Encodes a value as one tnetstring in a freshly allocated Buffer. Numbers that
 * are safe integers become `#`, other finite numbers `^` (never send a float to
 * a real Mongrel2: §2.3), bigints `#`, strings and bytes `,`, arrays `]`, plain
 * objects `}` in key order.
 *
 * @throws ProtocolError (code M2G_ERR_TNETSTRING) for NaN, Infinity, an
 *   out-of-range bigint, undefined, functions or symbols.
 */
export function encode(value: EncodableValue): Buffer {
  const sizes: number[] = [];
  const total = measure(value, sizes, 0);
  const buf = Buffer.allocUnsafe(total);
  const end = write(value, buf, 0, sizes, { i: 0 });
  if (end !== total) invalid(`internal size mismatch (${end} != ${total})`);
  return buf;
}

/** The number of bytes {@link encode} would produce for `value`. */
export function encodedLength(value: EncodableValue): number {
  return measure(value, [], 0);
}
