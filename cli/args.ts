/** Shared pieces of the command line: usage errors, env mirrors, number flags. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ERROR_CODES, M2gateError, type M2gateErrorOptions } from '../protocol/errors.js';

/** A usage error (M2G_ERR_USAGE): printed to stderr, exit code 2. */
export class UsageError extends M2gateError {
  constructor(message: string, options?: M2gateErrorOptions) {
    super(ERROR_CODES.USAGE, message, options);
    this.name = 'UsageError';
  }
}

/**
 * A command that could not start for a reason its message explains (a port in
 * use, a module that does not load): printed as one line without a stack, exit code 1.
 */
export class StartupError extends Error {
  override name = 'StartupError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parsed flag values, by long name. */
export type FlagValues = Record<string, string | boolean | string[] | undefined>;

/** `--help` and `--version`, which every command takes (neither has an environment mirror). */
export const COMMON_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
} as const;

const NO_ENV = new Set(Object.keys(COMMON_OPTIONS));

/**
 * `--workers -1` is a value, not an option: parseArgs calls it "ambiguous" and
 * asks for `--workers=-1`. Joining the two lets the number check say what is wrong.
 */
function joinNegativeValues(argv: string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (arg === '--') return [...out, ...argv.slice(i)];
    const spec = arg.startsWith('--') ? options[arg.slice(2)] : undefined;
    if (spec?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/** parseArgs' message, first sentence only: its advice on positionals quotes wrongly ('-- "--x"). */
function usageMessage(err: Error & { code?: string }): string {
  const first = err.message.split(/\.\s|\n/)[0]!;
  if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && /ambiguous/.test(err.message)) {
    return `${first} (a value that starts with '-' is written --name=VALUE)`;
  }
  return first;
}

/**
 * parseArgs, with every long option also read from `M2GATE_<NAME>` (dashes as
 * underscores) when the flag is absent. Repeatable options split env values on commas.
 *
 * @throws UsageError for an unknown option, a missing value or a stray argument.
 */
export function parseWithEnv<O extends Options>(argv: string[], options: O, allowPositionals: boolean) {
  let parsed;
  try {
    parsed = parseArgs({ args: joinNegativeValues(argv, options), options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError(usageMessage(err as Error));
  }
  const values = parsed.values as FlagValues;
  for (const [name, spec] of Object.entries(options)) {
    if (values[name] !== undefined || NO_ENV.has(name)) continue;
    const env = process.env[`M2GATE_${name.toUpperCase().replaceAll('-', '_')}`];
    if (env === undefined || env === '') continue;
    if (spec.type === 'boolean') values[name] = env === '1' || env === 'true';
    else values[name] = spec.multiple ? env.split(',').map((s) => s.trim()) : env;
  }
  return { values, positionals: parsed.positionals };
}

/** @throws UsageError naming the flag unless its value is an integer from `min` to `max`. */
export function intFlag(values: FlagValues, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new UsageError(`--${name} must be an integer ${range} (got '${String(raw)}')`);
  }
  return n;
}

/**
 * Worker threads per service. Each is a V8 isolate (about 10 MB before any
 * work), and the default link credit is 32 per thread, capped at 999,999.
 */
export const MAX_WORKERS = 1024;

/** --workers, checked here so that the message names the flag the user gave (not the credit it implies). */
export function workersFlag(values: FlagValues): number | undefined {
  return intFlag(values, 'workers', 1, MAX_WORKERS);
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** --log-level, default info. @throws UsageError listing the levels (pino would throw with a stack). */
export function logLevelFlag(values: FlagValues): string {
  const level = (values['log-level'] as string | undefined) ?? 'info';
  if (!LOG_LEVELS.includes(level)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')} (got '${level}')`);
  return level;
}

export function listFlag(values: FlagValues, name: string): string[] {
  const raw = values[name];
  if (raw === undefined) return [];
  const list = Array.isArray(raw) ? raw : [String(raw)];
  return list.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
}
