/**
 * Seeded randomness and byte mutation for the fuzz tests: a failing case can
 * be replayed from its seed.
 */

/** A tiny seeded PRNG (mulberry32): numbers in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Bytes that mean something to one of the grammars: tnetstring tags and separators, digits,
// JSON punctuation, CR, LF, NUL, SP, HTAB, high bytes.
const INTERESTING = [0x00, 0x09, 0x0a, 0x0d, 0x20, 0x2c, 0x3a, 0x23, 0x7d, 0x5d, 0x21, 0x7e, 0x5e, 0x30, 0x39, 0x2d, 0x2e, 0x22, 0x5c, 0x7b, 0x5b, 0x58, 0x7f, 0x80, 0xff];
const LONG_DIGITS = [...'999999999'].map((c) => c.charCodeAt(0));

/** One to five random edits of `input`, biased towards what the protocol grammars care about. */
export function mutate(input: Buffer, rand: () => number): Buffer {
  const bytes = [...input];
  const edits = 1 + Math.floor(rand() * 5);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rand() * (bytes.length + 1));
    switch (Math.floor(rand() * 8)) {
      case 0: bytes[at] = Math.floor(rand() * 256); break;
      case 1: bytes[at] = INTERESTING[Math.floor(rand() * INTERESTING.length)]!; break;
      case 2: bytes.splice(at, 1 + Math.floor(rand() * 8)); break;
      case 3: bytes.splice(at, 0, ...bytes.slice(Math.floor(rand() * bytes.length), Math.floor(rand() * bytes.length))); break;
      case 4: bytes.length = Math.min(bytes.length, at); break;
      case 5: bytes.splice(at, 0, ...LONG_DIGITS); break;
      case 6: { // bump a digit: sizes and ids one off
        const d = bytes.findIndex((b, i) => i >= at && b >= 0x30 && b <= 0x39);
        if (d >= 0) bytes[d] = 0x30 + ((bytes[d]! - 0x30 + 1 + Math.floor(rand() * 9)) % 10);
        break;
      }
      default: bytes.splice(at, 0, ...'\r\n'.split('').map((c) => c.charCodeAt(0))); break;
    }
  }
  return Buffer.from(bytes);
}
