/**
 * The brubeck-service passphrase: a plaintext shared secret carried in every
 * request and response (docs/brubeck-service-wire.md, "Passphrase"). m2gate
 * reads it only from a file or the M2GATE_BRUBECK_PASSPHRASE environment
 * variable (never a flag value, which `ps` shows), never logs it, and compares
 * what arrives in constant time: timingSafeEqual on SHA-256 digests, which
 * have equal lengths whatever the inputs are.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';

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

/**
 * Reads the passphrase from `file` (one trailing newline removed; the bytes
 * are taken as they are) or, without a file, from M2GATE_BRUBECK_PASSPHRASE.
 * Returns undefined when neither is set.
 *
 * @throws M2gateError (CONFIG) when the file cannot be read or the value is
 *   not a valid passphrase (see {@link BrubeckPassphrase}).
 */
export function loadPassphrase(file: string | undefined, env: NodeJS.ProcessEnv = process.env): BrubeckPassphrase | undefined {
  if (file !== undefined) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      throw new M2gateError(ERROR_CODES.CONFIG, `cannot read the Brubeck passphrase file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
    }
    const text = bytes.toString('latin1').replace(/\r?\n$/, '');
    return new BrubeckPassphrase(text);
  }
  const value = env[PASSPHRASE_ENV];
  if (value === undefined || value === '') return undefined;
  // The environment is text: send its UTF-8 bytes.
  return new BrubeckPassphrase(Buffer.from(value, 'utf8').toString('latin1'));
}
