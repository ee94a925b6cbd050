/**
 * CURVE key pairs for m2gate links: generation, validation, and the two key
 * files `m2gate keygen` writes.
 *
 * File format (UTF-8 text, one entry a line; blank lines and lines starting
 * with `#` are ignored):
 *
 *     # PREFIX.key — mode 0600, the only file that holds the secret
 *     public-key = <40 Z85 characters>
 *     secret-key = <40 Z85 characters>
 *
 *     # PREFIX.pub — give it to the peers that must trust this key
 *     public-key = <40 Z85 characters>
 *
 * A file holding nothing but one bare Z85 key on a line is read too, so keys
 * made by other ZeroMQ tools can be pasted in. Allow-list files hold any
 * number of public keys (bare or `public-key = …` lines), so `.pub` files can
 * be concatenated into one.
 *
 * Errors never echo a value that may be a secret key.
 */
import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { capability, curveKeyPair } from 'zeromq';
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';
import { z85Decode, z85Encode } from './z85.js';

/** A CURVE key pair as Z85 text (40 characters each, 32 bytes decoded). */
export interface CurveKeyPair {
  readonly publicKey: string;
  readonly secretKey: string;
}

/** The bytes that turn a raw X25519 secret into a PKCS#8 DER key for node:crypto. */
const PKCS8_X25519_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

function configError(message: string, cause?: unknown): M2gateError {
  return new M2gateError(ERROR_CODES.CONFIG, message, { cause });
}

/** True when `text` is a 40-character Z85 string, i.e. a 32-byte CURVE key. */
export function isZ85Key(text: string): boolean {
  return text.length === 40 && z85Decode(text) !== undefined;
}

/**
 * Makes a fresh key pair with libzmq's CURVE implementation.
 * @throws M2gateError (CONFIG) when the installed libzmq was built without CURVE.
 */
export function generateKeyPair(): CurveKeyPair {
  if (capability.curve !== true) throw configError('this zeromq build has no CURVE support');
  const { publicKey, secretKey } = curveKeyPair();
  return { publicKey, secretKey };
}

/**
 * The public key of a secret key. CURVE keys are X25519 keys (RFC 26), so
 * node:crypto derives it; zeromq.js does not expose `zmq_curve_public`.
 * @throws M2gateError (CONFIG) when `secretKey` is not a 40-character Z85 key.
 */
export function derivePublicKey(secretKey: string): string {
  const raw = secretKey.length === 40 ? z85Decode(secretKey) : undefined;
  if (raw === undefined) throw configError('a CURVE secret key must be 40 Z85 characters (value not shown)');
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, raw]), format: 'der', type: 'pkcs8' });
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  return z85Encode(Buffer.from(jwk.x ?? '', 'base64url'));
}

interface KeyText {
  publicKeys: string[];
  secretKeys: string[];
  bare: string[];
}

/** Splits key-file text into its entries; rejects lines it does not understand. */
function parseKeyText(text: string, source: string, mayHoldSecret: boolean): KeyText {
  const out: KeyText = { publicKeys: [], secretKeys: [], bare: [] };
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    // '#' is in the Z85 alphabet but can never start a key: it is digit 84,
    // and 84 * 85^4 is already above 2^32 - 1.
    if (line === '' || line.startsWith('#')) continue;
    const entry = /^(public-key|secret-key)\s*=\s*"?([^"\s]*)"?$/.exec(line);
    const name = entry?.[1];
    const value = entry?.[2] ?? line;
    if (!isZ85Key(value)) {
      // A line that may be a secret is not echoed; a public key or stray text is.
      const shown = name === 'secret-key' || (mayHoldSecret && name === undefined) ? '' : `: '${value.slice(0, 60)}'`;
      throw configError(`${source} line ${i + 1} is not a 40-character Z85 CURVE key${shown}`);
    }
    if (name === 'public-key') out.publicKeys.push(value);
    else if (name === 'secret-key') out.secretKeys.push(value);
    else out.bare.push(value);
  }
  return out;
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw configError(`cannot read ${what} '${file}': ${(err as Error).message}`, err);
  }
}

/** A pair from a secret key, checking a stated public key against it. */
function pairFromSecret(secretKey: string, statedPublic: string | undefined, source: string): CurveKeyPair {
  const publicKey = derivePublicKey(secretKey);
  if (statedPublic !== undefined && statedPublic !== publicKey) {
    throw configError(`${source}: the public-key line does not belong to the secret key`);
  }
  return { publicKey, secretKey };
}

/**
 * Reads a key pair from a `.key` file (or a file holding only the secret key
 * as one bare Z85 line); the public key is derived from the secret and, when
 * the file states one, checked against it.
 * @throws M2gateError (CONFIG) when the file is unreadable, holds no or several
 *   secret keys, or holds a public key that does not match.
 */
export function readKeyPair(file: string): CurveKeyPair {
  const parsed = parseKeyText(readText(file, 'CURVE key file'), file, true);
  const secrets = [...parsed.secretKeys, ...parsed.bare];
  if (secrets.length !== 1 || parsed.publicKeys.length > 1) {
    throw configError(`${file} must hold exactly one secret key (a 'secret-key = …' line, or one bare Z85 line)`);
  }
  return pairFromSecret(secrets[0]!, parsed.publicKeys[0], file);
}

/**
 * A secret given directly as 40 Z85 characters, or as a file for
 * {@link readKeyPair}. A value that is valid Z85 is a key unless a file of
 * that name exists.
 * @throws M2gateError (CONFIG) as readKeyPair, or when the value is neither.
 */
export function resolveKeyPair(fileOrZ85: string): CurveKeyPair {
  if (isZ85Key(fileOrZ85) && !existsSync(fileOrZ85)) return pairFromSecret(fileOrZ85, undefined, 'the secret key');
  if (!existsSync(fileOrZ85)) {
    const shown = fileOrZ85.length === 40 ? '(value not shown: it may be a key)' : `'${fileOrZ85}'`;
    throw configError(`the CURVE secret ${shown} is neither a 40-character Z85 key nor an existing file`);
  }
  return readKeyPair(fileOrZ85);
}

/** Public keys from a file; a file holding a secret key is refused. */
function readPublicKeysFromFile(file: string, what: string): string[] {
  const parsed = parseKeyText(readText(file, what), file, false);
  // A secret on a host that only needs the public half is a leak waiting to happen.
  if (parsed.secretKeys.length > 0) {
    throw configError(`${file} holds a secret key; ${what} takes public keys (the .pub file from m2gate keygen)`);
  }
  return [...parsed.publicKeys, ...parsed.bare];
}

/**
 * One public key, given directly as 40 Z85 characters or as a file holding
 * exactly one (a `.pub` file).
 * @throws M2gateError (CONFIG) when the value is neither, the file holds no or
 *   several keys, or the file holds a secret key.
 */
export function readPublicKey(fileOrZ85: string): string {
  if (isZ85Key(fileOrZ85) && !existsSync(fileOrZ85)) return fileOrZ85;
  if (!existsSync(fileOrZ85)) {
    throw configError(`CURVE public key '${fileOrZ85}' is neither a 40-character Z85 key nor an existing file`);
  }
  const keys = readPublicKeysFromFile(fileOrZ85, 'a CURVE public key');
  if (keys.length !== 1) throw configError(`${fileOrZ85} must hold exactly one public key (found ${keys.length})`);
  return keys[0]!;
}

/**
 * An allow-list: each entry is a Z85 public key or a file with any number of
 * them (one a line, `.pub` files concatenated). Duplicates are dropped.
 * @throws M2gateError (CONFIG) for a bad key, an unreadable file, or a file
 *   holding a secret key.
 */
export function readAllowList(entries: readonly string[]): string[] {
  const keys = new Set<string>();
  for (const entry of entries) {
    if (isZ85Key(entry) && !existsSync(entry)) keys.add(entry);
    else if (!existsSync(entry)) {
      throw configError(`allow-list entry '${entry}' is neither a 40-character Z85 public key nor an existing file`);
    } else for (const key of readPublicKeysFromFile(entry, 'the allow-list')) keys.add(key);
  }
  return [...keys];
}

/**
 * Writes `PREFIX.key` (both keys, mode 0600) and `PREFIX.pub` (public key,
 * mode 0644) in the format above. Refuses to overwrite either file; if the
 * second write fails the first file is removed.
 * @throws M2gateError (CONFIG) when a file exists, cannot be written, or the
 *   pair's public key does not belong to its secret key.
 */
export function writeKeyPair(prefix: string, pair: CurveKeyPair): { secretFile: string; publicFile: string } {
  const checked = pairFromSecret(pair.secretKey, pair.publicKey, 'the key pair');
  const secretFile = `${prefix}.key`;
  const publicFile = `${prefix}.pub`;
  for (const file of [secretFile, publicFile]) {
    if (existsSync(file)) throw configError(`refusing to overwrite ${file}`);
  }
  const write = (file: string, text: string, mode: number): void => {
    try {
      // 'wx' fails if the file appeared since the check above.
      writeFileSync(file, text, { flag: 'wx', mode });
    } catch (err) {
      throw configError(`cannot write ${file}: ${(err as Error).message}`, err);
    }
  };
  write(
    secretFile,
    '# m2gate CURVE key pair (ZeroMQ CURVE, Z85). Keep this file private: it holds the secret key.\n' +
      `public-key = ${checked.publicKey}\nsecret-key = ${checked.secretKey}\n`,
    0o600,
  );
  try {
    write(publicFile, `# m2gate CURVE public key (Z85). Give it to the peers that must trust this key.\npublic-key = ${checked.publicKey}\n`, 0o644);
  } catch (err) {
    unlinkSync(secretFile);
    throw err;
  }
  return { secretFile, publicFile };
}
