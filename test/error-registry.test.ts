// The error registry (protocol/errors.ts) checked against itself, node:http,
// pino and the README's "Error codes" table, as fastify's
// test/internals/errors.test.js checks its codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { pino } from 'pino';
import { ERRORS, ERROR_CODES, M2gateError, ProtocolError, errorSpec, type ErrorCode, type ErrorSpec } from '../protocol/errors.js';
import { ConfigError } from '../protocol/mongrel2-conf.js';
import { UsageError } from '../cli/args.js';
import * as api from '../index.js';

const entries = Object.entries(ERRORS) as [string, ErrorSpec][];

/** The README's "Error codes" table: code → status cell ('—' for none). */
function readmeTable(): Map<string, string> {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const start = readme.indexOf('\n## Error codes\n');
  assert.ok(start >= 0, 'README.md has an "Error codes" section');
  const section = readme.slice(start + 1).split(/\n## /)[0]!;
  const rows = new Map<string, string>();
  for (const line of section.split('\n')) {
    const m = /^\| `(M2G_ERR_[A-Z0-9_]+)` \| ([^|]+) \|/.exec(line);
    if (m) {
      assert.ok(!rows.has(m[1]!), `${m[1]} has one row in the README table`);
      rows.set(m[1]!, m[2]!.trim());
    }
  }
  return rows;
}

test('each key K has the code M2G_ERR_K, and codes are unique', () => {
  assert.ok(entries.length > 0);
  for (const [key, spec] of entries) assert.equal(spec.code, `M2G_ERR_${key}`);
  assert.equal(new Set(entries.map(([, spec]) => spec.code)).size, entries.length);
});

test('ERROR_CODES is the registry, key to code', () => {
  assert.deepEqual(ERROR_CODES, Object.fromEntries(entries.map(([key, spec]) => [key, spec.code])));
  assert.ok(Object.isFrozen(ERROR_CODES));
});

test('every status is an HTTP error status node:http knows; every level is a pino level; every code has a doc', () => {
  const levels = Object.keys(pino.levels.values);
  for (const [key, spec] of entries) {
    if (spec.status !== undefined) {
      assert.ok(Number.isInteger(spec.status) && spec.status >= 400 && spec.status <= 599, `${key}: ${spec.status} is 4xx or 5xx`);
      assert.ok(STATUS_CODES[spec.status] !== undefined, `${key}: ${spec.status} is in node:http STATUS_CODES`);
    }
    assert.ok(levels.includes(spec.level), `${key}: level '${spec.level}' is a pino level`);
    assert.ok(spec.doc.length > 0 && !spec.doc.includes('\n'), `${key}: a one-line doc`);
  }
});

test('the README table has one row per registry code, with its status', () => {
  const rows = readmeTable();
  for (const [, spec] of entries) {
    assert.ok(rows.has(spec.code), `${spec.code} is in the README's Error codes table`);
    assert.equal(rows.get(spec.code), spec.status === undefined ? '—' : String(spec.status), `${spec.code}: the README's status`);
  }
  const known = new Set<string>(entries.map(([, spec]) => spec.code));
  for (const code of rows.keys()) assert.ok(known.has(code), `the README's ${code} is in the registry`);
});

test('M2gateError, ProtocolError, ConfigError and UsageError take status and level from the registry', () => {
  for (const [, spec] of entries) {
    const code = spec.code as ErrorCode;
    const err = new M2gateError(code, 'm');
    assert.equal(err.statusCode, spec.status, code);
    assert.equal(err.level, spec.level, code);
    assert.equal(errorSpec(code), spec);
    assert.equal(new ProtocolError(code, 'm', 3).statusCode, spec.status, code);
  }
  const config = new ConfigError('f.conf', 1, 2, 'bad');
  assert.ok(config instanceof M2gateError);
  assert.equal(config.code, ERRORS.CONFIG.code);
  assert.equal(config.statusCode, undefined);
  const usage = new UsageError('--x is wrong');
  assert.ok(usage instanceof UsageError && usage instanceof M2gateError);
  assert.equal(usage.code, ERRORS.USAGE.code);
  assert.equal(usage.name, 'UsageError');
  assert.equal(usage.message, '--x is wrong');
});

test('the package exports the registry beside ERROR_CODES', () => {
  assert.equal(api.ERRORS, ERRORS);
  assert.equal(api.ERROR_CODES, ERROR_CODES);
});
