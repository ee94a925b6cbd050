// Path traversal at Dir routes through the whole gateway (issue #8, "Bad input"), beyond the
// list in gateway-dir.test.ts: more encodings, symlink shapes (chains, a link to `..`, a link to
// `/`, absolute links) and a fast-check property that strings dangerous segments together.
// Secret files are planted beside the base, above it and behind every link; their content must
// never appear in any response, no answer may be a 500, and every 200 must be a file that is
// inside the base. Requests are raw bytes over node:net (no client normalises them).
// M2GATE_FUZZ_CASES sets the number of property runs (the soak form).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { exchange, startGateway, tempTree } from './helpers/gateway.js';

const SECRET = 'TRAVERSAL-SECRET-4b2d';
const dir = realpathSync(tempTree());
const www = join(dir, 'www');
mkdirSync(join(www, 'sub', 'deeper'), { recursive: true });
mkdirSync(join(dir, 'www-secret'));
mkdirSync(join(dir, 'outside', 'nested'), { recursive: true });
const INSIDE: Record<string, string> = {
  'index.html': '<p>home</p>',
  'a.txt': 'file a',
  'sub/index.html': '<p>sub</p>',
  'sub/deeper/b.txt': 'file b',
  'sub/..x': 'dots in a name are fine',
};
for (const [name, content] of Object.entries(INSIDE)) writeFileSync(join(www, name), content);
writeFileSync(join(dir, 'secret.txt'), `${SECRET} beside the base`);
writeFileSync(join(dir, 'www-secret', 'x'), `${SECRET} in the sibling directory`);
writeFileSync(join(dir, 'www-secret', 'index.html'), `${SECRET} sibling index`);
writeFileSync(join(dir, 'outside', 'nested', 'y'), `${SECRET} nested outside`);
writeFileSync(join(dir, 'outside', 'index.html'), `${SECRET} outside index`);
// Links out, in every shape.
symlinkSync('../secret.txt', join(www, 'link-file'));
symlinkSync(join(dir, 'secret.txt'), join(www, 'link-abs'));
symlinkSync('../outside', join(www, 'link-dir'));
symlinkSync('..', join(www, 'dotdot'));
symlinkSync('/', join(www, 'rootlink'));
symlinkSync('link-file', join(www, 'chain1'));
symlinkSync('chain1', join(www, 'chain2'));
symlinkSync('../../outside/nested', join(www, 'sub', 'up-two'));
// A link that stays inside is served (control for the ones above).
symlinkSync('a.txt', join(www, 'link-in'));

const rig = await startGateway({ routes: [`'/': Dir(base='www/', index_file='index.html', default_ctype='text/plain')`, `'/static/': Dir(base='www/', index_file='index.html', default_ctype='text/plain')`] }, { dir });
after(() => rig.close());

const ALLOWED = new Set([200, 301, 304, 400, 404, 405, 412]);
const CONTENTS = new Set(Object.values(INSIDE));
const raw = (target: string, method = 'GET'): string => `${method} ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`;

/** One request; asserts the invariants and returns the status. */
async function probe(target: string, method = 'GET'): Promise<number> {
  const r = await exchange(rig.port, raw(target, method), { head: method === 'HEAD' });
  assert.ok(!r.raw.includes(SECRET), `secret bytes leaked for ${target}`);
  assert.ok(ALLOWED.has(r.status), `${target} → ${r.status}`);
  if (r.status === 200 && method === 'GET') assert.ok(CONTENTS.has(r.body.toString()), `${target} served ${JSON.stringify(r.body.toString().slice(0, 40))}`);
  return r.status;
}

const SECRET_ABS = join(dir, 'secret.txt');
const VECTORS: Array<[string, number]> = [
  // Links out: a file, an absolute link, a directory, `..`, `/`, a chain, a link two levels up.
  ['/static/link-file', 404],
  ['/static/link-abs', 404],
  ['/static/link-dir/nested/y', 404],
  ['/static/link-dir/', 404],
  ['/static/dotdot/secret.txt', 404],
  ['/static/dotdot/www-secret/x', 404],
  [`/static/rootlink${SECRET_ABS}`, 404],
  ['/static/chain2', 404],
  ['/static/sub/up-two/y', 404],
  // Absolute paths after the prefix, raw and encoded.
  [`/static/${SECRET_ABS}`, 404],
  [`/static/${SECRET_ABS.replaceAll('/', '%2f')}`, 404],
  [`/${SECRET_ABS.replaceAll('/', '%2F')}`, 404],
  // `..` spelled every way, with and without a trailing segment. Dir refuses any `..` segment
  // outright (dir-target.ts), even one that would stay inside.
  ['/static/sub/../a.txt', 404],
  ['/static/sub/%2e%2e/a.txt', 404],
  ['/static/..', 404],
  ['/static/../', 404],
  ['/static/%2e%2e', 404],
  ['/static/%2e%2e/', 404],
  ['/static/sub/../..', 404],
  ['/static/sub/../../secret.txt', 404],
  ['/static/./../secret.txt', 404],
  ['/static/.%2e/.%2e/secret.txt', 404],
  ['/static/%2e./secret.txt', 404],
  ['/static/sub/%2e%2e%2f%2e%2e%2fsecret.txt', 404],
  ['/static/sub/deeper/../../../secret.txt', 404],
  ['/static/..;/secret.txt', 404],
  ['/static/...', 404],
  ['/static/..%2fsecret.txt', 404],
  ['/static/%2e%2e%5csecret.txt', 404],
  ['/static/..%5c..%5csecret.txt', 404],
  ['/static/%5c%2e%2e%5csecret.txt', 404],
  // Double encoding is one level only: %252e is the name "%2e".
  ['/static/%252e%252e/secret.txt', 404],
  ['/static/%252e%252e%252fsecret.txt', 404],
  // NUL in every position.
  ['/static/a.txt%00', 404],
  ['/static/a.txt%00.html', 404],
  ['/static/%00', 404],
  ['/static/..%00/secret.txt', 404],
  ['/static/%2e%2e%00/secret.txt', 404],
  // Overlong and look-alike UTF-8 for `.`, `/` and `\`.
  ['/static/%c0%ae%c0%ae/secret.txt', 404],
  ['/static/%c0%2e%c0%2e/secret.txt', 404],
  ['/static/%e0%80%ae%e0%80%ae%e0%80%afsecret.txt', 404],
  ['/static/%f0%80%80%ae%f0%80%80%ae/secret.txt', 404],
  ['/static/..%c0%afsecret.txt', 404],
  ['/static/..%c1%9csecret.txt', 404],
  ['/static/..%e0%80%afsecret.txt', 404],
  ['/static/%ef%bc%8e%ef%bc%8e%ef%bc%8fsecret.txt', 404],
  ['/static/..%ef%bc%8fsecret.txt', 404],
  // The sibling directory that shares the base's prefix (Mongrel2 1.12.2 serves it).
  ['/../www-secret/x', 404],
  ['/../www-secret/', 404],
  ['/static/../www-secret/index.html', 404],
  // Escapes that are not escapes, raw backslashes: refused at the request line.
  ['/static/%u002e%u002e/secret.txt', 400],
  ['/static/..\\secret.txt', 400],
  ['/static/\\..\\..\\secret.txt', 400],
];

for (const [target, status] of VECTORS) {
  test(`Dir traversal ${target} → ${status}, no secret byte`, async () => {
    assert.equal(await probe(target), status);
    assert.equal(await probe(target, 'HEAD'), status);
  });
}

test('controls: files and links inside the base are served (the vectors fail for the right reason)', async () => {
  const served: Array<[string, string]> = [
    ['/static/a.txt', 'file a'],
    ['/static/link-in', 'file a'],
    ['/static/sub/deeper/b.txt', 'file b'],
    ['/static/sub/..x', 'dots in a name are fine'],
    ['/static/%61.txt', 'file a'],
  ];
  for (const [target, body] of served) {
    const r = await exchange(rig.port, raw(target));
    assert.equal(r.status, 200, target);
    assert.equal(r.body.toString(), body, target);
  }
});

const PIECES = ['..', '.', '%2e%2e', '%2E%2e', '.%2e', '%2e', '%2f', '%2F', '%5c', '%00', '%c0%ae', '%c0%af', '%e0%80%ae', '%252e', '...', '..;', '', 'sub', 'deeper', 'a.txt', 'secret.txt', 'www-secret', 'x', 'outside', 'nested', 'y', 'index.html', 'link-file', 'link-dir', 'dotdot', 'rootlink', 'chain2', 'up-two', 'link-in', SECRET_ABS.slice(1)];
const JOINERS = ['/', '/', '/', '%2f', '%5c', ''];
const RUNS = Number(process.env.M2GATE_FUZZ_CASES ?? 400);

test(`property: any path of dangerous segments never leaks, never 500s, and 200 only serves inside files (${RUNS} runs)`, async () => {
  const statuses = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom('/static/', '/'),
      fc.array(fc.tuple(fc.constantFrom(...PIECES), fc.constantFrom(...JOINERS)), { minLength: 1, maxLength: 8 }),
      fc.constantFrom('GET', 'HEAD'),
      async (prefix, parts, method) => {
        const target = prefix + parts.map(([piece, join]) => piece + join).join('');
        const status = await probe(target, method);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      },
    ),
    { numRuns: RUNS, seed: Number(process.env.M2GATE_FUZZ_SEED ?? 0x7a7) },
  );
  // The generator reaches both outcomes, so the property is not vacuous.
  assert.ok((statuses.get(404) ?? 0) > 0 && (statuses.get(200) ?? 0) + (statuses.get(301) ?? 0) > 0, JSON.stringify([...statuses]));
});
