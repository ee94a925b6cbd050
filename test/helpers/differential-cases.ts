// The request cases both differential tests run against the real Mongrel2 1.12.2:
// test/differential-request.test.ts (the request builder alone) and
// test/gateway-differential.test.ts (the whole gateway). One list, so the two cannot drift.

export interface DifferentialCase {
  name: string;
  bytes: Buffer;
  /** Mongrel2's key order is fixed for it: compare the whole message byte for byte. */
  exact?: boolean;
  /** The status we answer where we deliberately refuse what Mongrel2 serves (request-hygiene). */
  refusedWith?: number;
  /** Header values node:http cannot give us as Mongrel2 forwards them: [Mongrel2's, ours]. */
  differs?: Record<string, [string, string]>;
}

/** Mongrel2's route for the cases' handler. */
export const DIFFERENTIAL_PATTERN = '/handler';

/** Strings as latin1, so every byte value can be written. */
const bin = (...parts: Array<string | Buffer>): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)));
/** Every byte a tnetstring or JSON encoder could trip on: NUL, high bytes, `,:}]`, CR LF, `0:,`, space, `{`. */
const BINARY = Buffer.from([0x00, 0xff, 0xfe, 0x80, 0x2c, 0x3a, 0x7d, 0x5d, 0x01, 0x0d, 0x0a, 0x30, 0x3a, 0x2c, 0x20, 0x7b]);

export const DIFFERENTIAL_CASES: readonly DifferentialCase[] = [
  { name: 'GET with a query', bytes: bin('GET /handler/items?id=7&name=caf%C3%A9 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: probe/1.0\r\nAccept: */*\r\n\r\n') },
  { name: 'POST with a binary body', bytes: bin(`POST /handler/bin HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: ${BINARY.length}\r\n\r\n`, BINARY) },
  {
    name: 'repeated headers: 7 values of one, mixed-case names, a forged x-forwarded-for',
    bytes: bin(
      'GET /handler/dup HTTP/1.1\r\nHost: localhost\r\nX-Dup: one\r\nX-DUP: two\r\nx-dup: three\r\nCookie: a=1\r\nX-Forwarded-For: 1.2.3.4\r\nCookie: b=2\r\n',
      [0, 1, 2, 3, 4, 5, 6].map((i) => `X-Many: ${i}\r\n`).join(''),
      'x-forwarded-for: 5.6.7.8\r\n\r\n',
    ),
  },
  {
    name: 'UTF-8 and non-UTF-8 header values',
    bytes: bin('GET /handler/utf8 HTTP/1.1\r\nHost: localhost\r\nX-Name: ', Buffer.from('José Müller 日本 🦀'), '\r\nX-Latin1: caf\xe9\r\nX-Quote: say "hi" \\ back\r\n\r\n'),
  },
  {
    name: 'trailing blanks in values',
    bytes: bin('GET /handler/space HTTP/1.1\r\nHost: localhost\r\nX-Space:   lead and trail   \r\nX-Tab:\tv\t\r\n\r\n'),
    differs: { 'x-space': ['lead and trail   ', 'lead and trail'], 'x-tab': ['v\t', 'v'] },
  },
  { name: 'HEAD', bytes: bin('HEAD /handler/head HTTP/1.1\r\nHost: localhost\r\n\r\n'), exact: true },
  { name: 'a #fragment', bytes: bin('GET /handler/frag?q=1#part HTTP/1.1\r\nHost: localhost\r\n\r\n'), exact: true, refusedWith: 400 },
  { name: '/x? (empty query)', bytes: bin('GET /handler/x? HTTP/1.1\r\nHost: localhost\r\n\r\n'), exact: true },
  { name: 'HTTP/1.0 without any header', bytes: bin('GET /handler/bare HTTP/1.0\r\n\r\n'), exact: true },
  { name: 'a percent-encoded path with dots, kept as sent (§3.1)', bytes: bin('GET /handler/a/../b/%7Efoo%2Fbar HTTP/1.1\r\nHost: localhost\r\n\r\n'), exact: true },
  { name: 'a chunked body', bytes: bin('POST /handler/chunked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n') },
];
