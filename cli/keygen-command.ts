/** `m2gate keygen`: writes a CURVE key pair for encrypted m2gate links. */
import { parseArgs } from 'node:util';
import { generateKeyPair, writeKeyPair } from '../zmq/curve.js';
import { COMMON_OPTIONS, UsageError } from './args.js';
import { packageVersion } from './package-root.js';

export const KEYGEN_HELP = `Usage: m2gate keygen [--out PREFIX]

Writes a CURVE key pair for m2gate links: PREFIX.key (public and secret key,
mode 0600, keep it private) and PREFIX.pub (public key only). Refuses to
overwrite an existing file. Prints the public key (Z85) on stdout.

Give the gateway its .key (--curve-secret / M2GATE_CURVE_SECRET) and each
service's .pub (--curve-allow / M2GATE_CURVE_ALLOW); give each service its
own .key and the gateway's .pub (--curve-server-key / M2GATE_CURVE_SERVER_KEY).

Options:
  --out PREFIX   where to write (default: m2gate, i.e. ./m2gate.key and ./m2gate.pub)
  -h, --help     this text
  -v, --version  print the version
`;

export function keygenCommand(argv: string[]): void {
  let values;
  try {
    // Plain parseArgs: an M2GATE_OUT environment mirror would surprise here.
    ({ values } = parseArgs({
      args: argv,
      options: { out: { type: 'string' }, ...COMMON_OPTIONS },
      strict: true,
    }));
  } catch (err) {
    throw new UsageError((err as Error).message.split(/\.\s|\n/)[0] ?? (err as Error).message);
  }
  if (values.help) {
    process.stdout.write(KEYGEN_HELP);
    return;
  }
  if (values.version) {
    process.stdout.write(`${packageVersion()}\n`);
    return;
  }
  const prefix = values.out ?? 'm2gate';
  if (prefix === '') throw new UsageError('--out must not be empty');
  const pair = generateKeyPair();
  const { secretFile, publicFile } = writeKeyPair(prefix, pair);
  // stdout carries only the key, so PUB=$(m2gate keygen --out x) works.
  process.stderr.write(`m2gate: wrote ${secretFile} (secret, mode 0600) and ${publicFile}\n`);
  process.stdout.write(`${pair.publicKey}\n`);
}
