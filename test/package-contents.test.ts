// Issue #18, item 8: what `npm pack` ships. The LICENSE package.json names,
// every document a --help text points to, and every source file a shipped
// source map names (a map whose sources are missing only confuses debuggers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { ROOT, runCli } from './helpers/service.js';

// --ignore-scripts: `prepare` would rebuild dist/ under the other tests' feet.
const packed = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' })) as Array<{ files: Array<{ path: string }> }>;
const files = new Set(packed[0]!.files.map((f) => f.path));

test('the package ships an MIT LICENSE, as package.json says', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { license: string };
  assert.equal(pkg.license, 'MIT');
  assert.ok(files.has('LICENSE'));
  const text = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
  assert.match(text, /^MIT License\n\nCopyright \(c\) the m2gate authors\n/);
});

test('every document a --help text points to is shipped', async () => {
  const help = (await Promise.all([[], ['start'], ['gateway'], ['service'], ['keygen']].map((c) => runCli([...c, '--help'])))).map((r) => r.stdout).join('\n');
  const docs = [...help.matchAll(/[\w/.-]+\.md\b/g)].map((m) => m[0]);
  assert.ok(docs.length > 0, 'the help texts name no document (the test would prove nothing)');
  for (const doc of docs) assert.ok(files.has(doc), `${doc} is named in --help but not shipped`);
});

test('every source a shipped source map names is shipped too', () => {
  const maps = [...files].filter((f) => f.endsWith('.js.map'));
  assert.ok(maps.length > 0, 'no source maps shipped: then this test should check that none is referenced');
  for (const map of maps) {
    const { sources } = JSON.parse(readFileSync(join(ROOT, map), 'utf8')) as { sources: string[] };
    for (const source of sources) {
      const path = normalize(join(dirname(map), source));
      assert.ok(files.has(path), `${map} names ${path}, which is not shipped`);
    }
  }
});
