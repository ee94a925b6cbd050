// RFC 9110 conditional requests (gateway/conditional.ts) as a table: the verdict for each
// combination of If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since.
// test/dir-target.test.ts proves the Dir answers built from these verdicts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { entityTags, evaluateConditionals, type ConditionalVerdict } from '../gateway/conditional.js';

const ETAG = '"18f-7"';
const MTIME_S = 1_700_000_000;
const at = (s: number): string => new Date(s * 1000).toUTCString();

const CASES: Array<[string, IncomingHttpHeaders, ConditionalVerdict]> = [
  ['no preconditions', {}, 200],
  // If-Match (§13.1.1): strong comparison.
  ['If-Match: the tag', { 'if-match': ETAG }, 200],
  ['If-Match: *', { 'if-match': ' * ' }, 200],
  ['If-Match: a list holding the tag', { 'if-match': `"a", ${ETAG}` }, 200],
  ['If-Match: another tag', { 'if-match': '"other"' }, 412],
  ['If-Match: the weak form of the tag', { 'if-match': `W/${ETAG}` }, 412],
  ['If-Match: nothing well-formed', { 'if-match': 'garbage' }, 412],
  // If-Unmodified-Since (§13.1.4), only without If-Match.
  ['If-Unmodified-Since: later', { 'if-unmodified-since': at(MTIME_S + 1) }, 200],
  ['If-Unmodified-Since: the same second', { 'if-unmodified-since': at(MTIME_S) }, 200],
  ['If-Unmodified-Since: earlier', { 'if-unmodified-since': at(MTIME_S - 1) }, 412],
  ['If-Unmodified-Since: not a date (ignored)', { 'if-unmodified-since': 'yesterday' }, 200],
  ['If-Match wins over If-Unmodified-Since', { 'if-match': ETAG, 'if-unmodified-since': at(MTIME_S - 1) }, 200],
  // If-None-Match (§13.1.2): weak comparison.
  ['If-None-Match: the tag', { 'if-none-match': ETAG }, 304],
  ['If-None-Match: the weak form of the tag', { 'if-none-match': `W/${ETAG}` }, 304],
  ['If-None-Match: *', { 'if-none-match': '*' }, 304],
  ['If-None-Match: a comma inside a tag', { 'if-none-match': `"a,b", ${ETAG}` }, 304],
  ['If-None-Match: another tag', { 'if-none-match': '"other"' }, 200],
  // If-Modified-Since (§13.1.3), only without If-None-Match.
  ['If-Modified-Since: the same second', { 'if-modified-since': at(MTIME_S) }, 304],
  ['If-Modified-Since: earlier', { 'if-modified-since': at(MTIME_S - 1) }, 200],
  ['If-Modified-Since: not a date (ignored)', { 'if-modified-since': 'soon' }, 200],
  ['a non-matching If-None-Match decides alone', { 'if-none-match': '"other"', 'if-modified-since': at(MTIME_S) }, 200],
  // §13.2.2 order: the 412 preconditions come first.
  ['a failed If-Match beats a matching If-None-Match', { 'if-match': '"other"', 'if-none-match': ETAG }, 412],
  ['a failed If-Unmodified-Since beats If-Modified-Since', { 'if-unmodified-since': at(MTIME_S - 1), 'if-modified-since': at(MTIME_S) }, 412],
  ['a passed If-Match, then a matching If-None-Match', { 'if-match': ETAG, 'if-none-match': ETAG }, 304],
];

for (const [name, headers, verdict] of CASES) {
  test(`conditional request: ${name} → ${verdict}`, () => {
    assert.equal(evaluateConditionals(headers, ETAG, MTIME_S), verdict);
  });
}

test('entity-tag lists are split by tag, not by comma; malformed members are skipped', () => {
  assert.deepEqual(entityTags('"a", W/"b,c" , junk, "d"'), ['"a"', 'W/"b,c"', '"d"']);
  assert.deepEqual(entityTags('junk'), []);
});
