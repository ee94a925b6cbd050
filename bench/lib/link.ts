/**
 * Whether the built m2gate has the m2gate link (gateway ROUTER, service
 * DEALER): its `m2gate service --help` documents `--connect`. The link
 * variants are skipped, and say so, when it does not.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { BenchConfig } from './config.js';

const cache = new Map<string, boolean>();

/** True when `m2gate service --help` of the build in use mentions `--connect`. */
export function hasLink(cfg: BenchConfig): boolean {
  const known = cache.get(cfg.m2gateBin);
  if (known !== undefined) return known;
  let found = false;
  if (existsSync(cfg.m2gateBin)) {
    const out = spawnSync(process.execPath, [cfg.m2gateBin, 'service', '--help'], { encoding: 'utf8', timeout: 10_000 });
    found = /--connect\b/.test(`${out.stdout}${out.stderr}`);
  }
  cache.set(cfg.m2gateBin, found);
  return found;
}

/** What a link variant is missing, in words (empty: runnable). */
export function linkMissing(cfg: BenchConfig): string[] {
  return hasLink(cfg) ? [] : [`the m2gate link in ${cfg.m2gateBin} (its 'm2gate service --help' has no --connect: not committed or not built yet; npm run build)`];
}
