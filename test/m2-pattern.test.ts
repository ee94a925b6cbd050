import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compilePattern, DEFAULT_MAX_PATTERN_STEPS, MAX_BACKTRACKING_ITEMS } from '../protocol/m2-pattern.js';
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';

const m = (pattern: string, subject: string, start?: number): number => compilePattern(pattern).match(subject, start);
const byte = (c: number): string => String.fromCharCode(c);

// Independent C-locale references, written as JS regexes over one byte.
const CLASSES: Record<string, (s: string) => boolean> = {
  a: (s) => /^[A-Za-z]$/.test(s),
  c: (s) => s.length === 1 && (s.charCodeAt(0) < 0x20 || s.charCodeAt(0) === 0x7f),
  d: (s) => /^[0-9]$/.test(s),
  l: (s) => /^[a-z]$/.test(s),
  p: (s) => /^[!-/:-@[-`{-~]$/.test(s),
  s: (s) => /^[ \t\n\v\f\r]$/.test(s),
  u: (s) => /^[A-Z]$/.test(s),
  w: (s) => /^[A-Za-z0-9]$/.test(s),
  x: (s) => /^[0-9A-Fa-f]$/.test(s),
  z: (s) => s === '\0',
};

describe('m2-pattern: classes (§6.3)', () => {
  for (const [cl, ref] of Object.entries(CLASSES)) {
    void it(`\\${cl} and \\${cl.toUpperCase()} over all 256 bytes`, () => {
      const lower = compilePattern(`\\${cl}`);
      const upper = compilePattern(`\\${cl.toUpperCase()}`);
      for (let c = 0; c < 256; c++) {
        const expected = ref(byte(c));
        assert.equal(lower.match(byte(c)), expected ? 1 : -1, `\\${cl} on byte ${c}`);
        assert.equal(upper.match(byte(c)), expected ? -1 : 1, `\\${cl.toUpperCase()} on byte ${c}`);
      }
    });
  }

  void it('. matches any byte, including NUL and 0xff, but not past the end', () => {
    for (const c of [0, 0x0a, 0x41, 0xff]) assert.equal(m('.', byte(c)), 1);
    assert.equal(m('.', ''), -1);
  });

  void it('\\X for any other X is the literal X', () => {
    assert.equal(m('\\.', '.'), 1);
    assert.equal(m('\\.', 'a'), -1);
    assert.equal(m('\\-', '-'), 1);
    assert.equal(m('\\\\', '\\'), 1);
    assert.equal(m('\\(x\\)', '(x)'), 3);
    assert.equal(m('\\$', '$'), 1);
    assert.equal(m('\\[', '['), 1);
    assert.equal(m('\\B', 'B'), 1); // only lower-case b and f are special
    assert.equal(m('\\F', 'F'), 1);
  });

  void it('% is an ordinary character (Lua classes like %d do not work)', () => {
    assert.equal(m('%d', '%d'), 2);
    assert.equal(m('%d', '5'), -1);
    assert.equal(m('%%', '%%'), 2);
  });

  void it('^ is a literal byte outside sets', () => {
    assert.equal(m('^a', 'a'), -1);
    assert.equal(m('^a', '^a'), 2);
  });
});

describe('m2-pattern: sets', () => {
  const cases: [string, string, boolean][] = [
    ['[a-z]', 'q', true], ['[a-z]', 'Q', false],
    ['[^a-z]', 'Q', true], ['[^a-z]', 'q', false],
    ['[\\d_]', '7', true], ['[\\d_]', '_', true], ['[\\d_]', 'x', false],
    ['[^\\d]', '7', false], ['[\\D]', 'x', true], ['[\\D]', '7', false],
    ['[a-cx-z]', 'b', true], ['[a-cx-z]', 'y', true], ['[a-cx-z]', 'm', false],
    ['[]]', ']', true], ['[]]', 'a', false], // `]` first is literal
    ['[^]]', ']', false], ['[^]]', 'a', true],
    ['[^^]', '^', false], ['[^^]', 'b', true], ['[a^]', '^', true],
    ['[a-]', '-', true], ['[a-]', 'b', false], // `-` before `]` is literal
    ['[-a]', '-', true],
    ['[\\]]', ']', true], ['[\\-]', '-', true],
    ['[.]', '.', true], ['[.]', 'a', false], // `.` is literal in a set
    ['[(]', '(', true],
  ];
  for (const [pattern, subject, hit] of cases) {
    void it(`${pattern} ${hit ? 'matches' : 'rejects'} '${subject}'`, () => {
      assert.equal(m(pattern, subject), hit ? 1 : -1);
    });
  }
});

describe('m2-pattern: quantifiers', () => {
  void it('* is greedy, - is lazy (visible in the end index and with $)', () => {
    assert.equal(m('a*', 'aaab'), 3);
    assert.equal(m('a-', 'aaab'), 0);
    assert.equal(m('.*x', 'axbx'), 4);
    assert.equal(m('.-x', 'axbx'), 2);
    assert.equal(m('.-x$', 'axbx'), 4);
    assert.equal(m('[a-z]-$', 'abc'), 3);
    assert.equal(m('[a-z]-$', 'ab1'), -1);
  });

  void it('+ needs one, ? is optional and greedy', () => {
    assert.equal(m('a+', ''), -1);
    assert.equal(m('a+', 'aa'), 2);
    assert.equal(m('ab?', 'ab'), 2);
    assert.equal(m('ab?', 'ac'), 1);
    assert.equal(m('ab?b', 'ab'), 2); // backtracks out of the optional byte
  });

  void it('a quantifier applies only directly after an item', () => {
    assert.equal(m('a)*', 'a*'), 2); // `)` ends the item: `*` is literal
    assert.equal(m('a)*', 'aa'), -1);
    assert.equal(m('*', '*'), 1); // leading quantifier is a literal
    assert.equal(m('x**$', '*'), 1); // x* then a literal *
    assert.equal(m('x**$', ''), -1);
    assert.equal(m('--', '---'), 0); // lazy literal -
    assert.equal(m('\\b()*', '()*'), 3); // \b takes no quantifier
  });
});

describe('m2-pattern: \\b, \\f, parentheses, $', () => {
  void it('\\bxy matches a balanced run', () => {
    assert.equal(m('\\b()', '(a(b)c)d'), 7);
    assert.equal(m('\\b()', '(a(b)c'), -1);
    assert.equal(m('\\b()', 'x()'), -1);
    assert.equal(m('\\b""x', '"ab"x'), 5);
  });

  void it('\\f[set] is a frontier; the byte before start and after the end read as NUL', () => {
    assert.equal(m('\\f[a-z]', 'ab'), 0);
    assert.equal(m('\\f[a-z]', '1'), -1);
    // Mongrel2 matches the path remainder as its own string: the byte before start is NUL.
    assert.equal(m('\\f[a-z]', 'ab', 1), 1);
    assert.equal(m('a\\f[a-z]', 'aab'), -1);
    assert.equal(m('b\\f[^a-z]', 'ab', 1), 2);
    assert.equal(m('b\\f[^a-z]', 'abc', 1), -1);
    assert.equal(m('a\\f[\\z]', 'a'), 1);
    assert.equal(m('\\f[\\z]', ''), -1);
    assert.equal(m('.-\\f[%d]%', 'ab%d%'), 3);
  });

  void it('parentheses have no meaning and may be unbalanced', () => {
    assert.equal(m('(a)b', 'ab'), 2);
    assert.equal(m('a(b(c', 'abc'), 3);
    assert.equal(m('())(', ''), 0);
  });

  void it('$ anchors only as the very last character of the whole pattern', () => {
    assert.equal(m('(.*.jpg)$', 'x.jpg'), 5);
    assert.equal(m('(.*.jpg)$', 'x.jpgz'), -1);
    assert.equal(m('(.*.jpg$)', 'x.jpg'), -1);
    assert.equal(m('(.*.jpg$)', 'x.jpg$'), 6); // literal $, no end anchor
    assert.equal(m('(.*.jpg$)', 'x.jpg$)'), 6);
    assert.equal(m('()$', ''), 0);
    assert.equal(m('()$', 'x'), -1);
    assert.equal(m('$$', '$'), 1);
    assert.equal(m('$$', ''), -1);
  });

  void it('matches are anchored at start and bounded by end', () => {
    assert.equal(m('ab', 'xxab', 2), 4);
    assert.equal(m('ab', 'xxab'), -1);
    assert.equal(compilePattern('a*$').match('aaab', 0, 3), 3);
    assert.equal(compilePattern('a').match('a', 2), -1);
    assert.equal(compilePattern('a-', { anchorEnd: true }).match('aaa'), 3);
    assert.equal(compilePattern('a-', { anchorEnd: true }).match('aab'), -1);
  });
});

describe('m2-pattern: malformed patterns and limits', () => {
  for (const bad of ['[a', '[]', '[^]', '[\\]', '\\', 'a\\', '\\b', '\\ba', '\\f', '\\fa', '\\f[a', 'x[^']) {
    void it(`'${bad}' throws CONFIG`, () => {
      assert.throws(() => compilePattern(bad), (err: unknown) => {
        assert.ok(err instanceof M2gateError);
        assert.equal(err.code, ERROR_CODES.CONFIG);
        assert.match(err.message, /malformed pattern/);
        return true;
      });
    });
  }

  void it('rejects a bad maxSteps and too many quantified items', () => {
    assert.throws(() => compilePattern('a', { maxSteps: 0 }), { code: ERROR_CODES.CONFIG });
    assert.throws(() => compilePattern('a*'.repeat(MAX_BACKTRACKING_ITEMS + 1)), { code: ERROR_CODES.CONFIG });
    assert.equal(compilePattern('a*'.repeat(MAX_BACKTRACKING_ITEMS)).match('aaa'), 3);
  });

  void it('a pathological pattern gives up within the step budget and reports no match', () => {
    assert.equal(m('(.-.-.-.-.-.-.-.-x)$', 'a'.repeat(5000)), -1);
    assert.equal(m('(.*.*.*.*.*.*.*.*x)', 'a'.repeat(5000)), -1);
  });

  void it('the budget is what stops it: a small budget fails a match a large one finds', () => {
    const subject = 'a'.repeat(1000);
    assert.equal(compilePattern('a*$').match(subject), 1000);
    assert.equal(compilePattern('a*$', { maxSteps: 100 }).match(subject), -1);
    assert.equal(compilePattern('a-$', { maxSteps: 100 }).match(subject), -1);
    assert.equal(compilePattern('a-$', { maxSteps: 2100 }).match(subject), 1000);
  });

  void it('the default budget covers linear patterns on a whole 4 KiB request line', () => {
    const path = `/${'d/'.repeat(2040)}x.jpg`;
    assert.ok(path.length > 4000 && DEFAULT_MAX_PATTERN_STEPS > 0);
    assert.equal(m('(.*.jpg)$', path), path.length);
    assert.equal(m('/(.-/)x.jpg$', path), path.length);
    assert.equal(m('([a-z/]+)%.jpg$', `${path.slice(0, -6)}x%.jpg`), path.length);
  });
});

describe('m2-pattern: agrees with a JS RegExp translation (property)', () => {
  // Items whose backtracking order is the same in Lua and in JS regexes.
  const atom = fc.constantFrom(['a', 'a'], ['b', 'b'], ['.', '[^]'], ['[ab]', '[ab]'], ['[^a]', '[^a]'], ['\\a', '[A-Za-z]']);
  const quant = fc.constantFrom(['', ''], ['*', '*'], ['+', '+'], ['-', '*?'], ['?', '?']);
  const item = fc.tuple(atom, quant).map(([[p, r], [q, rq]]) => [p + q, r + rq] as const);
  const pattern = fc.tuple(fc.array(item, { maxLength: 6 }), fc.boolean());

  void it('end index equals the JS sticky match end', () => {
    fc.assert(
      fc.property(pattern, fc.stringMatching(/^[abc]{0,10}$/), ([items, anchored], subject) => {
        const src = items.map((i) => i[0]).join('') + (anchored ? '$' : '');
        const re = new RegExp(items.map((i) => i[1]).join('') + (anchored ? '$' : ''), 'y');
        const js = re.exec(subject);
        assert.equal(compilePattern(src).match(subject), js === null ? -1 : js[0].length, src);
      }),
      { numRuns: 2000 },
    );
  });
});
