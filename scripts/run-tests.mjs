// Node 20's test runner takes no globs, so list the test files here.
// Usage: node scripts/run-tests.mjs [substring...]  (filters files by name)
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...walk(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const files = walk(join(root, 'test'))
  .map((f) => relative(root, f))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
// `m2gate start` opens its admin listener on 127.0.0.1:6768 by default; tests start many at
// once, so each gets a free port of its own (logged as 'admin listening') unless it sets --admin.
// Services log no line per request by default (it costs a stdout write each); many tests wait
// for those lines, so the suite turns them on (test/request-log.test.ts checks the default).
const env = { ...process.env, M2GATE_ADMIN: process.env.M2GATE_ADMIN ?? '127.0.0.1:0', M2GATE_LOG_REQUESTS: process.env.M2GATE_LOG_REQUESTS ?? '1' };
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, ...files],
  { cwd: root, stdio: 'inherit', env },
);
process.exit(result.status ?? 1);
