import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RouteTable, type HostEntry } from '../gateway/route-table.js';
import { ERROR_CODES } from '../protocol/errors.js';

/** A one-host table whose route targets are their keys. */
function table(keys: string[]): RouteTable<string> {
  return new RouteTable([{ name: 'localhost', matching: 'localhost', routes: keys.map((key) => ({ key, target: key })) }], 'localhost');
}
const route = (t: RouteTable<string>, path: string): string | undefined => t.match('localhost', path)?.pattern;

describe('route-table: §6.2 measured table', () => {
  const t = table(['/', '/a/b/', '/users', '/users/([0-9]+)$', '/cars-fast/([a-z]-)$']);
  const rows: [string, string | undefined][] = [
    ['/users/1234', '/users/([0-9]+)$'],
    ['/users/12ab', undefined], // no fallback to `/users` or `/`
    ['/users', '/users'],
    ['/usersX', '/users'],
    ['/cars-fast/abc', '/cars-fast/([a-z]-)$'],
    ['/cars-fast/ab1', undefined],
    ['/a/b/c', '/a/b/'],
    ['/x', '/'],
    // prefix quirk: the path is a proper prefix of a longer route's prefix
    ['/us', '/users'],
    ['/a/', '/a/b/'],
    ['/a', '/a/b/'],
    ['/', '/'],
    ['', undefined],
    ['http://host/path', undefined], // absolute-form target
  ];
  for (const [path, expected] of rows) {
    void it(`${JSON.stringify(path)} -> ${expected ?? '404'}`, () => assert.equal(route(t, path), expected));
  }

  void it('reports the host, route, prefix and full key', () => {
    const hit = t.match(undefined, '/users/7');
    assert.ok(hit);
    assert.equal(hit.host.name, 'localhost');
    assert.equal(hit.route.target, '/users/([0-9]+)$');
    assert.equal(hit.prefix, '/users/');
    assert.equal(hit.pattern, '/users/([0-9]+)$');
  });
});

describe('route-table: prefix quirk and tie-breaking', () => {
  void it('/hand -> /handler, and GET / -> /handler without a / route (fixture config)', () => {
    const t = table(['/handler', '/static/', '/proxy/']);
    assert.equal(route(t, '/hand'), '/handler');
    assert.equal(route(t, '/'), '/handler');
    assert.equal(route(t, '/static'), '/static/');
    assert.equal(route(t, '/other'), undefined);
  });

  // Measured against Mongrel2 with the route rows inserted in exactly this order.
  const cases: [string[], string, string][] = [
    [['/ab/x', '/ac'], '/a', '/ab/x'],
    [['/ac', '/ab/x'], '/a', '/ac'],
    [['/abc/', '/ab'], '/a', '/ab'],
    [['/ab', '/abc/'], '/', '/ab'],
    [['/ab/x', '/ab', '/ac'], '/a', '/ab'],
    [['/b/x', '/ac', '/ab/x'], '/', '/b/x'],
    [['/b/x', '/ac', '/ab/x'], '/a', '/ac'],
    [['/abcde', '/abc/', '/abcd'], '/a', '/abcd'],
    [['/abcde', '/abc/', '/abcd'], '/abc', '/abcd'],
    [['/abcde', '/abc/', '/abcd'], '/abc/x', '/abc/'],
    [['/b', '/abx', '/aby', '/ab'], '/', '/b'],
    [['/b', '/abx', '/aby', '/ab'], '/a', '/ab'],
    [['/zz', '/y/a', '/y/b', '/x'], '/y', '/y/a'],
    [['/zz', '/y/a', '/y/b', '/x'], '/', '/zz'],
  ];
  for (const [keys, path, expected] of cases) {
    void it(`[${keys.join(' ')}]: ${path} -> ${expected}`, () => assert.equal(route(table(keys), path), expected));
  }

  void it('a pattern route never takes a path shorter than its prefix', () => {
    assert.equal(route(table(['/users/(.*)']), '/us'), undefined);
    assert.equal(route(table(['/users/()']), '/us'), undefined);
    assert.equal(route(table(['/users/([0-9]*)$']), '/users'), undefined);
    assert.equal(route(table(['/users/([0-9]*)$']), '/users/'), '/users/([0-9]*)$');
    assert.equal(route(table(['/ab(.*)', '/abc']), '/a'), undefined); // no fallback to /abc either
  });

  void it('in the quirk case only the first route of the prefix counts', () => {
    assert.equal(route(table(['/ab(x)', '/ab']), '/a'), undefined);
    assert.equal(route(table(['/ab', '/ab(x)']), '/a'), '/ab');
    assert.equal(route(table(['/ab()$', '/']), '/a'), undefined);
  });
});

describe('route-table: routes sharing a prefix', () => {
  void it('are tried in config order', () => {
    const t = table(['/users/([0-9]+)$', '/users/([a-z]+)$']);
    assert.equal(route(t, '/users/12'), '/users/([0-9]+)$');
    assert.equal(route(t, '/users/ab'), '/users/([a-z]+)$');
    assert.equal(route(t, '/users/1a'), undefined);
    assert.equal(route(table(['/users/(.*)', '/users/([0-9]+)$']), '/users/12'), '/users/(.*)');
    assert.equal(route(table(['/users/([0-9]+)$', '/users/(.*)']), '/users/12'), '/users/([0-9]+)$');
  });

  void it('a plain route after a failing pattern route still matches', () => {
    const t = table(['/ab(x)', '/ab']);
    assert.equal(route(t, '/ab'), '/ab');
    assert.equal(route(t, '/abx'), '/ab(x)');
    assert.equal(route(t, '/abc'), '/ab');
    assert.equal(route(table(['/ab', '/ab(x)']), '/abx'), '/ab');
  });

  void it('()$ makes a route exact', () => {
    const t = table(['/users()$', '/']);
    assert.equal(route(t, '/users'), '/users()$');
    assert.equal(route(t, '/users/'), undefined);
    assert.equal(route(t, '/usersX'), undefined);
    assert.equal(route(t, '/other'), '/');
  });

  void it('the prefix is literal; only the part from the first ( is a pattern', () => {
    assert.equal(route(table(['/x.z()$']), '/x.z'), '/x.z()$');
    assert.equal(route(table(['/x.z()$']), '/xyz'), undefined);
    assert.equal(route(table(['/a-b()$']), '/a-b'), '/a-b()$');
    assert.equal(route(table(['/a\\']), '/a'), '/a\\'); // quirk with a literal backslash
    assert.equal(route(table(['/(.*.jpg)$']), '/x.jpg'), '/(.*.jpg)$');
    assert.equal(route(table(['/(.*.jpg$)']), '/x.jpg'), undefined);
  });

  void it('a route with an empty prefix never matches (measured with (.*))', () => {
    const t = table(['(.*)', '/a']);
    assert.equal(route(t, '/b'), undefined);
    assert.equal(route(t, '/'), '/a');
  });
});

describe('route-table: JSON-socket routes', () => {
  const t = table(['/', '@chat', '@c(x)']);
  void it('match by exact name only', () => {
    assert.equal(route(t, '@chat'), '@chat');
    assert.equal(route(t, '@c(x)'), '@c(x)');
    assert.equal(route(t, '@ch'), undefined);
    assert.equal(route(t, '@chatroom'), undefined);
    assert.equal(route(t, '@cx'), undefined);
    assert.equal(t.match(undefined, '@chat')?.prefix, '@chat');
  });
});

describe('route-table: §6.1 host selection', () => {
  const host = (name: string, matching = name): HostEntry<string> => ({ name, matching, routes: [{ key: '/', target: name }] });
  const t = new RouteTable(
    [
      host('localhost'),
      host('exact.org'),
      host('pattern', '(.+).example.com'),
      host('b', 'b.example.net'),
      host('dot', '.example.net'),
      host('lazy', '(a-).ex.com'),
      host('pa', '(a+).ab.com'),
      host('pb', '(b+).ab.com'),
      host('cz', 'cz.com'),
      host('pcz', '(a+).b.cz.com'),
      host('esc', '(a)\\d.com'),
      host('paren', 'x)b.com'),
      host('open', '(b.org'),
    ],
    'localhost',
  );
  const rows: [string | undefined, string][] = [
    ['exact.org', 'exact.org'],
    ['www.exact.org', 'exact.org'],
    ['exact.org:8080', 'exact.org'],
    ['exact.org:80:90', 'exact.org'], // port cut at the first colon
    ['EXACT.ORG', 'localhost'], // case-sensitive
    ['unknown.net', 'localhost'],
    ['xact.org', 'exact.org'], // quirk: a suffix of the suffix
    ['act.org', 'exact.org'],
    [undefined, 'localhost'],
    ['', 'localhost'],
    ['www.example.com', 'pattern'],
    ['a.b.example.com:80', 'pattern'],
    ['example.com', 'localhost'],
    ['.example.com', 'localhost'], // `.+` needs one byte
    ['x.b.example.net', 'b'], // longest suffix wins
    ['c.example.net', 'dot'],
    ['example.net', 'dot'], // quirk with a plain suffix
    ['aaa.ex.com', 'lazy'], // pattern anchored at both ends
    ['.ex.com', 'lazy'],
    ['ex.com', 'localhost'], // quirk with a pattern host: no match
    ['aa.ab.com', 'pa'],
    ['ab.ab.com', 'localhost'], // pattern must cover the whole rest
    ['bb.ab.com', 'localhost'], // second host with the same suffix is unreachable
    ['c.b.cz.com', 'localhost'], // no fallback to cz.com
    ['b.cz.com', 'localhost'],
    ['x.cz.com', 'cz'],
    ['a\\d.com', 'esc'], // the suffix is literal, not a pattern
    ['a5.com', 'localhost'],
    ['xb.com', 'paren'],
    ['x)b.com', 'localhost'],
    ['(b.org', 'open'],
    ['b.org', 'open'],
    ['ab.org', 'localhost'],
  ];
  for (const [header, expected] of rows) {
    void it(`${JSON.stringify(header)} -> ${expected}`, () => {
      assert.equal(t.selectHost(header).name, expected);
      assert.equal(t.match(header, '/x')?.route.target, expected);
    });
  }

  void it('the default host is found by name, not by matching', () => {
    const t2 = new RouteTable([host('one', 'one.org'), host('main', 'main.org')], 'main');
    assert.equal(t2.selectHost('nowhere').name, 'main');
    assert.equal(t2.selectHost('x.one.org').name, 'one');
  });
});

describe('route-table: configuration errors', () => {
  const h = (routes: string[], matching = 'localhost'): HostEntry<null> => ({
    name: 'localhost',
    matching,
    routes: routes.map((key) => ({ key, target: null })),
  });
  void it('throws CONFIG when default_host names no host', () => {
    assert.throws(() => new RouteTable([h(['/'])], 'other'), { code: ERROR_CODES.CONFIG, message: /default_host 'other'/ });
  });
  void it('throws CONFIG for a malformed route pattern, naming the route', () => {
    assert.throws(() => new RouteTable([h(['/', '/a([a)'])], 'localhost'), { code: ERROR_CODES.CONFIG, message: /'\/a\(\[a\)'.*missing '\]'/ });
    assert.throws(() => new RouteTable([h(['/a(\\'])], 'localhost'), { code: ERROR_CODES.CONFIG });
  });
  void it('throws CONFIG for a malformed host pattern', () => {
    assert.throws(() => new RouteTable([h(['/'], '([a).com')], 'localhost'), { code: ERROR_CODES.CONFIG, message: /matching/ });
  });
  void it('does not compile the literal prefix or JSON-socket keys', () => {
    assert.doesNotThrow(() => new RouteTable([h(['/a[', '/b\\', '@x[('])], 'localhost'));
  });
});

/**
 * Reference: a plain ternary search tree with Mongrel2's prefix search, built the obvious
 * way, to check the closed form in AffixIndex on random route sets.
 */
interface Node { c: string; low?: Node; eq?: Node; high?: Node; value?: string }
function tstInsert(root: Node | undefined, key: string, i = 0): Node {
  const c = key[i]!;
  const n = root ?? { c };
  if (c < n.c) n.low = tstInsert(n.low, key, i);
  else if (c > n.c) n.high = tstInsert(n.high, key, i);
  else if (i + 1 < key.length) n.eq = tstInsert(n.eq, key, i + 1);
  else n.value ??= key;
  return n;
}
function tstSearchPrefix(root: Node | undefined, s: string): string | undefined {
  let n = root;
  let last: Node | undefined;
  let i = 0;
  while (i < s.length && n) {
    if (s[i]! < n.c) n = n.low;
    else if (s[i]! > n.c) n = n.high;
    else if (++i < s.length) {
      if (n.value !== undefined) last = n;
      n = n.eq;
    }
  }
  n ??= last;
  while (n && n.value === undefined) n = n.eq;
  return n?.value;
}

describe('route-table: agrees with a ternary-search-tree reference (property)', () => {
  const str = fc.stringMatching(/^\/[ab/]{0,4}$/);
  void it('selects the same plain route', () => {
    fc.assert(
      fc.property(fc.uniqueArray(str, { minLength: 1, maxLength: 8 }), str, (keys, path) => {
        let root: Node | undefined;
        for (const k of keys) root = tstInsert(root, k);
        assert.equal(route(table(keys), path), tstSearchPrefix(root, path));
      }),
      { numRuns: 3000 },
    );
  });

  void it('selects the same host (suffix search = prefix search on reversed names)', () => {
    const rev = (s: string): string => [...s].reverse().join('');
    fc.assert(
      fc.property(fc.uniqueArray(str, { minLength: 1, maxLength: 8 }), str, (names, header) => {
        let root: Node | undefined;
        for (const n of names) root = tstInsert(root, rev(n));
        const hosts = names.map((n) => ({ name: n, matching: n, routes: [] }));
        const t = new RouteTable([...hosts, { name: 'default', matching: 'default', routes: [] }], 'default');
        const expected = tstSearchPrefix(root, rev(header));
        assert.equal(t.selectHost(header).name, expected === undefined ? 'default' : rev(expected));
      }),
      { numRuns: 3000 },
    );
  });
});
