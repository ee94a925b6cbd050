/**
 * Z85 (ZeroMQ RFC 32), the text form of CURVE keys: every 4 bytes become 5
 * characters of an 85-letter alphabet, big-endian. A 32-byte key is 40
 * characters. Pure: no I/O.
 *
 * Written here because zeromq.js exports no Z85 codec (only curveKeyPair) and
 * the npm packages that do are unmaintained; it is needed to check key text
 * and to derive a public key from a secret one with node:crypto.
 */

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#';

/** Character code → digit value, or -1 for characters outside the alphabet. */
const DIGITS = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) DIGITS[ALPHABET.charCodeAt(i)] = i;

/**
 * Encodes bytes whose length is a multiple of 4.
 * @throws RangeError when the length is not a multiple of 4.
 */
export function z85Encode(bytes: Uint8Array): string {
  if (bytes.length % 4 !== 0) throw new RangeError(`Z85 encodes multiples of 4 bytes (got ${bytes.length})`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let out = '';
  for (let i = 0; i < bytes.length; i += 4) {
    let value = view.getUint32(i);
    const group = new Array<string>(5);
    for (let j = 4; j >= 0; j--) {
      group[j] = ALPHABET[value % 85]!;
      value = Math.floor(value / 85);
    }
    out += group.join('');
  }
  return out;
}

/**
 * Decodes Z85 text, or returns undefined when it is not Z85: a length that is
 * not a multiple of 5, a character outside the alphabet, or a 5-character
 * group worth more than 2^32 - 1 (e.g. `#####`).
 */
export function z85Decode(text: string): Buffer | undefined {
  if (text.length % 5 !== 0) return undefined;
  const out = Buffer.alloc((text.length / 5) * 4);
  for (let i = 0; i < text.length; i += 5) {
    let value = 0;
    for (let j = 0; j < 5; j++) {
      const code = text.charCodeAt(i + j);
      const digit = code < 128 ? DIGITS[code]! : -1;
      if (digit < 0) return undefined;
      value = value * 85 + digit;
    }
    if (value > 0xffff_ffff) return undefined;
    out.writeUInt32BE(value, (i / 5) * 4);
  }
  return out;
}
