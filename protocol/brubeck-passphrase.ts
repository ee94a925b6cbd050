/**
 * The brubeck-service passphrase: a plaintext shared secret carried in every
 * request and response (docs/brubeck-service-wire.md, "Passphrase"). m2gate
 * reads it only from a file or the M2GATE_BRUBECK_PASSPHRASE environment
 * variable (never a flag value, which `ps` shows; cli/brubeck-flags.ts), never logs it, and compares
 * what arrives in constant time: timingSafeEqual on SHA-256 digests, which
 * have equal lengths whatever the inputs are.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ERROR_CODES, M2gateError } from './errors.js';

export const PASSPHRASE_ENV = 'M2GATE_BRUBECK_PASSPHRASE';

/** A passphrase that cannot leak through util.inspect, JSON.stringify or a log line. */
export class BrubeckPassphrase {
  readonly #value: string;
  readonly #digest: Buffer;

  /**
   * @param value the passphrase, as the latin1 string it travels as.
   * @throws M2gateError (CONFIG) when it is empty, contains a space (Brubeck
   *   splits its header on spaces) or a character above U+00FF.
   */
  constructor(value: string) {
    if (value.length === 0) throw new M2gateError(ERROR_CODES.CONFIG, 'the Brubeck passphrase is empty');
    if (/[\s]/.test(value)) throw new M2gateError(ERROR_CODES.CONFIG, 'the Brubeck passphrase contains white space: Brubeck peers split their header on spaces');
    // eslint-disable-next-line no-control-regex
    if (/[^\x00-\xff]/.test(value)) throw new M2gateError(ERROR_CODES.CONFIG, 'the Brubeck passphrase has a character above U+00FF (it travels as bytes)');
    this.#value = value;
    this.#digest = digest(value);
  }

  /** The value to put on the wire. */
  reveal(): string {
    return this.#value;
  }

  /** Constant-time comparison with what a peer sent. */
  matches(received: string): boolean {
    return timingSafeEqual(this.#digest, digest(received));
  }

  toJSON(): string {
    return '[redacted]';
  }

  toString(): string {
    return '[redacted]';
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return 'BrubeckPassphrase([redacted])';
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(Buffer.from(value, 'latin1')).digest();
}
