/** Command-line values of the bench entries (index.ts, instructions.ts). */

/**
 * An integer flag: `fallback` when absent. wrk takes whole seconds and the instruction bench
 * counts whole requests, so every count and duration is an integer.
 *
 * @throws Error naming the flag when the value is not an integer >= min.
 */
export function intOption(raw: string | undefined, name: string, fallback: number, min: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!(Number.isInteger(n) && n >= min)) throw new Error(`--${name} must be an integer >= ${min} (got '${raw}')`);
  return n;
}
