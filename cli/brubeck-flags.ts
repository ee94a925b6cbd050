/**
 * Brubeck flags of both commands. The passphrase comes from a file or
 * M2GATE_BRUBECK_PASSPHRASE only: a flag value would show in `ps`.
 *
 *   gateway: --brubeck-service NAME=ADDR,RESP_ADDR[,0.1.0] (repeatable) --brubeck-passphrase-file F
 *   service: --brubeck ADDR,RESP_ADDR --passphrase-file F
 *
 * ADDR may carry a `brubeck+` prefix (`brubeck+ipc://run/slow`), which is dropped.
 */
import type { BrubeckServiceConfig } from '../gateway/brubeck-client.js';
import type { BrubeckFrontConfig } from '../workers/brubeck-front.js';
import { readFileSync } from 'node:fs';
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';
import { BrubeckPassphrase, PASSPHRASE_ENV } from '../protocol/brubeck-passphrase.js';
import { listFlag, UsageError, type FlagValues } from './args.js';

export const BRUBECK_GATEWAY_OPTIONS = {
  'brubeck-service': { type: 'string', multiple: true },
  'brubeck-passphrase-file': { type: 'string' },
} as const;

export const BRUBECK_GATEWAY_HELP = `  --brubeck-service NAME=ADDR,RESP_ADDR[,0.1.0]  a Brubeck service app routes  M2GATE_BRUBECK_SERVICE
                        reach as ctx.call('brubeck://NAME/path'): binds PUSH on ADDR and
                        DEALER on RESP_ADDR, as a Brubeck client does (repeatable)
  --brubeck-passphrase-file F  its passphrase (or ${PASSPHRASE_ENV})   M2GATE_BRUBECK_PASSPHRASE_FILE
`;

export const BRUBECK_SERVICE_OPTIONS = {
  brubeck: { type: 'string' },
  'passphrase-file': { type: 'string' },
} as const;

export const BRUBECK_SERVICE_HELP = `  --brubeck ADDR,RESP_ADDR  serve a Brubeck service client: PULL connects to   M2GATE_BRUBECK
                        its service_addr, ROUTER to its service_resp_addr
  --passphrase-file F   the Brubeck passphrase (or ${PASSPHRASE_ENV})   M2GATE_PASSPHRASE_FILE
`;

const addr = (s: string): string => (s.startsWith('brubeck+') ? s.slice('brubeck+'.length) : s);

function passphrase(values: FlagValues, flag: string): BrubeckPassphrase {
  let p: BrubeckPassphrase | undefined;
  try {
    p = loadPassphrase(values[flag] as string | undefined);
  } catch (err) {
    throw new UsageError((err as M2gateError).message);
  }
  if (!p) throw new UsageError(`a Brubeck service needs its passphrase: --${flag} FILE or ${PASSPHRASE_ENV}`);
  return p;
}

/** @throws UsageError on a malformed --brubeck-service or a missing passphrase. */
export function brubeckServicesFromFlags(values: FlagValues): BrubeckServiceConfig[] {
  // listFlag splits on commas (as the env mirror does): an item with '=' starts a service.
  const groups: string[][] = [];
  for (const item of listFlag(values, 'brubeck-service')) {
    if (item.includes('=')) groups.push([item]);
    else if (groups.length > 0) groups[groups.length - 1]!.push(item);
    else throw new UsageError(`--brubeck-service takes NAME=ADDR,RESP_ADDR (got '${item}')`);
  }
  if (groups.length === 0) return [];
  const secret = passphrase(values, 'brubeck-passphrase-file');
  return groups.map((g) => {
    const [first, responseAddr, version, ...rest] = g;
    const eq = first!.indexOf('=');
    const name = first!.slice(0, eq);
    const serviceAddr = addr(first!.slice(eq + 1));
    const text = g.join(',');
    if (!/^[A-Za-z0-9_.-]+$/.test(name) || !serviceAddr || !responseAddr || rest.length > 0 || (version !== undefined && version !== '0.1.0' && version !== '0.1.3')) {
      throw new UsageError(`--brubeck-service takes NAME=ADDR,RESP_ADDR[,0.1.0|0.1.3] (got '${text}')`);
    }
    return { name, serviceAddr, responseAddr: addr(responseAddr), passphrase: secret, ...(version === undefined ? {} : { version }) };
  });
}

/** @throws UsageError on a malformed --brubeck or a missing passphrase. */
export function brubeckFrontFromFlags(values: FlagValues): BrubeckFrontConfig | undefined {
  const raw = values.brubeck as string | undefined;
  if (raw === undefined) return undefined;
  const [serviceAddr, responseAddr, ...rest] = raw.split(',').map((s) => s.trim());
  if (!serviceAddr || !responseAddr || rest.length > 0) throw new UsageError(`--brubeck takes ADDR,RESP_ADDR (got '${raw}')`);
  return { serviceAddr: addr(serviceAddr), responseAddr: addr(responseAddr), passphrase: passphrase(values, 'passphrase-file') };
}

/**
 * Reads the passphrase from `file` (one trailing newline removed; the bytes
 * are taken as they are) or, without a file, from M2GATE_BRUBECK_PASSPHRASE.
 * Returns undefined when neither is set.
 *
 * @throws M2gateError (CONFIG) when the file cannot be read or the value is
 *   not a valid passphrase (see {@link BrubeckPassphrase}).
 */
function loadPassphrase(file: string | undefined, env: NodeJS.ProcessEnv = process.env): BrubeckPassphrase | undefined {
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
