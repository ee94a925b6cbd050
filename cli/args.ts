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

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parsed flag values, by long name. */
export type FlagValues = Record<string, string | boolean | string[] | undefined>;

/**
 * parseArgs, with every long option also read from `M2GATE_<NAME>` (dashes as
 * underscores) when the flag is absent. Repeatable options split env values on commas.
 */
export function parseWithEnv<O extends Options>(argv: string[], options: O, allowPositionals: boolean) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const values = parsed.values as FlagValues;
  for (const [name, spec] of Object.entries(options)) {
    if (values[name] !== undefined || name === 'help') continue;
    const env = process.env[`M2GATE_${name.toUpperCase().replaceAll('-', '_')}`];
    if (env === undefined || env === '') continue;
    if (spec.type === 'boolean') values[name] = env === '1' || env === 'true';
    else values[name] = spec.multiple ? env.split(',').map((s) => s.trim()) : env;
  }
  return { values, positionals: parsed.positionals };
}

export function intFlag(values: FlagValues, name: string, min: number): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min} (got '${String(raw)}')`);
  return n;
}

export function listFlag(values: FlagValues, name: string): string[] {
  const raw = values[name];
  if (raw === undefined) return [];
  const list = Array.isArray(raw) ? raw : [String(raw)];
  return list.flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
}
