// The `METHOD /path/:param` router shared by service routes and app routes
// (protocol/method-router.ts): compile errors, first match in definition order,
// 404/405 with Allow, HEAD served by GET, params, rest, and query parsing.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileMethodRoutes, matchMethodRoute, parseQuery } from '../protocol/method-router.js';

const routes = compileMethodRoutes(
  ['GET /svc/hello', 'GET /svc/user/:id', 'PUT /svc/user/:id', 'POST /svc/echo', 'GET /svc/files/*', '* /any/:x', 'GET /svc/user/me'].map((pattern) => ({ pattern })),
);
const match = (method: string, path: string) => matchMethodRoute(routes, method, path);

describe('method-router: compile', () => {
  it('keeps the pattern as written and reads only `pattern` from each entry', () => {
    const [route] = compileMethodRoutes([{ pattern: 'GET /a/:b/*', handler: () => 1 } as { pattern: string }]);
    assert.equal(route?.pattern, 'GET /a/:b/*');
    assert.equal(route?.method, 'GET');
    assert.equal(route?.rest, true);
    assert.deepEqual(route?.segments, [{ literal: 'a' }, { param: 'b' }]);
  });

  for (const bad of ['GET', 'get /x', 'GET x', '/x', 'GET /:', 'GET /a*/b', 'GET /*/b', 'G=T /x']) {
    it(`rejects '${bad}', naming it`, () => {
      assert.throws(() => compileMethodRoutes([{ pattern: bad }]), (err: Error) => err.message.includes(`'${bad}'`));
    });
  }
});

describe('method-router: match', () => {
  it('a literal path', () => {
    const found = match('GET', '/svc/hello');
    assert.equal(found.route?.pattern, 'GET /svc/hello');
    assert.equal(found.index, 0);
    assert.deepEqual(found.params, {});
  });

  it('the first match in definition order wins', () => {
    assert.equal(match('GET', '/svc/user/me').route?.pattern, 'GET /svc/user/:id');
    assert.deepEqual(match('GET', '/svc/user/me').params, { id: 'me' });
  });

  it('`:name` is percent-decoded and must not be empty', () => {
    assert.deepEqual(match('GET', '/svc/user/a%20b').params, { id: 'a b' });
    assert.deepEqual(match('GET', '/svc/user/'), {});
  });

  it('a bad percent-escape in a param is badEncoding (400), not a miss', () => {
    assert.deepEqual(match('GET', '/svc/user/%zz'), { badEncoding: true });
  });

  it('a final `*` takes the rest of the path, possibly empty, escapes kept', () => {
    assert.deepEqual(match('GET', '/svc/files/a/b%2Fc').params, { '*': 'a/b%2Fc' });
    assert.deepEqual(match('GET', '/svc/files').params, { '*': '' });
    assert.deepEqual(match('GET', '/svc/files/').params, { '*': '' });
  });

  it('unknown path: no route and no allow (404)', () => {
    assert.deepEqual(match('GET', '/nope'), {});
    assert.deepEqual(match('GET', '/svc/hello/extra'), {});
    assert.deepEqual(match('GET', '/svc'), {});
  });

  it('known path, other method: allow lists the methods that match, HEAD with GET (405)', () => {
    assert.deepEqual(new Set(match('DELETE', '/svc/user/1').allow), new Set(['GET', 'HEAD', 'PUT']));
    assert.deepEqual(match('GET', '/svc/echo'), { allow: ['POST'] });
  });

  it('HEAD is served by a GET route', () => {
    assert.equal(match('HEAD', '/svc/hello').route?.pattern, 'GET /svc/hello');
  });

  it('`*` as the method takes any method', () => {
    for (const method of ['GET', 'DELETE', 'BREW']) assert.equal(match(method, '/any/1').route?.pattern, '* /any/:x');
  });

  it('an empty table matches nothing', () => {
    assert.deepEqual(matchMethodRoute([], 'GET', '/'), {});
  });
});

describe('method-router: parseQuery', () => {
  it('empty', () => assert.deepEqual(parseQuery(''), {}));

  it('decodes, repeats become arrays in order', () => {
    assert.deepEqual(parseQuery('a=1&b=x%20y&a=2&a=3&c'), { a: ['1', '2', '3'], b: 'x y', c: '' });
  });

  it('skips keys that could reach Object.prototype', () => {
    const query = parseQuery('__proto__=1&constructor=2&ok=3');
    assert.deepEqual(Object.keys(query), ['ok']);
    assert.equal(Object.getPrototypeOf(query), Object.prototype);
  });
});
