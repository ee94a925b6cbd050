// Line ends in handler replies. A bare LF ends a head line like CRLF does (RFC 9112 §2.2), even
// among CRLF lines, because real handlers write such heads and Mongrel2 passes them to browsers:
// Brubeck 0.4.0 joins its headers with CRLF but its cookies with "\nSet-Cookie: ". The gateway
// re-emits every head with CRLF. What stays refused (bare CR, NUL, a line without a colon,
// obs-fold) gets a 502, and every such 502 is logged with its reason.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { fakeHandler, handlerConf, logCapture, startGateway, type RawClient } from './helpers/gateway.js';

const H = handlerConf('/h/', '1a2b3c4d-0000-4000-8000-0000000000lf');
const log = logCapture();
const rig = await startGateway({ handlers: [H] }, { logger: log.logger });
const handler = await fakeHandler(H, rig.pool('/h/'));
after(async () => {
  handler.stop();
  await rig.close();
});

async function forward(path: string): Promise<{ c: RawClient; id: number }> {
  const c = await rig.client();
  c.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  const { msg } = await handler.next(`request for ${path}`);
  return { c, id: msg.connId };
}

/** The head as the client received it, and whether any of its lines ended with a bare LF. */
function headOf(raw: Buffer): { head: string; bareLf: boolean } {
  const text = raw.toString('latin1');
  const head = text.slice(0, text.indexOf('\r\n\r\n') + 4);
  return { head, bareLf: /(^|[^\r])\n/.test(head) };
}

// The reply a Brubeck 0.4.0 handler sends for `self.set_cookie('a', '1'); self.set_cookie('b',
// '2'); return self.render()` with body "ok": its render() puts every cookie into one
// Set-Cookie value joined by "\nSet-Cookie: ", and http_response() joins the headers with CRLF.
const BRUBECK_TWO_COOKIES = Buffer.from(
  'HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\nSet-Cookie: b=2; Path=/\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nok',
  'latin1',
);

test("a Brubeck reply with two cookies (bare LF inside a CRLF head) reaches the client with both, in CRLF", async () => {
  const { c, id } = await forward('/h/cookies');
  await handler.reply(id, BRUBECK_TWO_COOKIES);
  const r = await c.response();
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), 'ok');
  const { head, bareLf } = headOf(r.raw);
  assert.equal(bareLf, false, `a bare LF reached the client: ${JSON.stringify(head)}`);
  assert.deepEqual(head.match(/(?<=\n)Set-Cookie: [^\r\n]*\r\n/g), ['Set-Cookie: a=1; Path=/\r\n', 'Set-Cookie: b=2; Path=/\r\n']);
  assert.match(head, /\r\nContent-Type: text\/html\r\n/);
  // The connection is still in sync for the next request.
  c.write('GET /h/next HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const { msg } = await handler.next();
  await handler.reply(msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext');
  assert.equal((await c.response()).body.toString(), 'next');
  c.destroy();
});

test('a head with bare LF on every line, a chunked body with bare-LF chunk lines: relayed in CRLF', async () => {
  const { c, id } = await forward('/h/all-lf');
  await handler.reply(id, 'HTTP/1.1 201 Created\nX-A: 1\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n');
  const r = await c.response();
  assert.equal(r.status, 201);
  assert.equal(r.headers['x-a'], '1');
  assert.equal(r.body.toString(), 'abc');
  assert.equal(headOf(r.raw).bareLf, false);
  c.destroy();
});

const STILL_REFUSED: Array<[string, string, RegExp]> = [
  ['a bare CR in a value', 'HTTP/1.1 200 OK\r\nX-A: a\rX-B: b\r\nContent-Length: 0\r\n\r\n', /bare CR/],
  ['a bare CR ending a line', 'HTTP/1.1 200 OK\r\nX-A: a\r\rContent-Length: 0\r\n\r\n', /bare CR/],
  ['a NUL in a value', 'HTTP/1.1 200 OK\nX-A: a\x00b\nContent-Length: 0\n\n', /NUL/],
  ['a header line without a colon (after a bare LF)', 'HTTP/1.1 200 OK\r\nX-A: a\nnot a header\r\nContent-Length: 0\r\n\r\n', /not a token followed by ":"/],
  ['obs-fold (after a bare LF)', 'HTTP/1.1 200 OK\r\nX-A: a\n continued\r\nContent-Length: 0\r\n\r\n', /obs-fold/],
];

for (const [name, reply, reason] of STILL_REFUSED) {
  test(`still refused with a logged reason: ${name} → 502`, async () => {
    const from = log.lines.length;
    const { c, id } = await forward(`/h/refused-${STILL_REFUSED.findIndex(([n]) => n === name)}`);
    await handler.reply(id, Buffer.from(reply, 'latin1'));
    const r = await c.response();
    assert.equal(r.status, 502);
    assert.equal(r.headers.connection, 'close');
    const line = await log.waitFor((l) => l.msg === 'bad reply from the handler: 502' && l.connId === id, `502 log for ${name}`, from);
    assert.equal(line.code, 'M2G_ERR_BAD_REPLY');
    assert.equal(line.handler, H.sendSpec);
    assert.match(String(line.err), reason);
    assert.equal(line.level, 40);
    await c.end();
  });
}
