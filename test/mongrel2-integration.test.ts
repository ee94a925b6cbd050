// The codecs against the real Mongrel2 1.12.2: HTTP in through Mongrel2, the
// message out on a zeromq PULL socket, parsed with our codec, answered with
// our encoder over PUB, and the client's response checked. Both encodings.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Pull, Publisher } from 'zeromq';
import { request, Agent } from 'undici';
import { parseRequest, type M2Request } from '../protocol/m2-request.js';
import { encodeClose, encodeReply } from '../protocol/m2-reply.js';
import { startMongrel2Handler, type Mongrel2 } from './helpers/mongrel2.js';

const agent = new Agent({ keepAliveTimeout: 100, keepAliveMaxTimeout: 100 });
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  await agent.close();
});

interface Rig {
  m2: Mongrel2;
  pull: Pull;
  pub: Publisher;
  sender: string;
  next(): Promise<M2Request>;
}

async function rig(protocol: 'json' | 'tnetstring'): Promise<Rig> {
  const sender = protocol === 'json' ? '9d7a1c2e-1111-4000-8000-0000000000aa' : '9d7a1c2e-2222-4000-8000-0000000000bb';
  const { m2, pull, pub, stop } = await startMongrel2Handler({ route: '/handler', sendIdent: sender, protocol });
  cleanups.push(stop);
  return {
    m2,
    pull,
    pub,
    sender,
    async next() {
      const [frame] = await pull.receive();
      return parseRequest(frame!);
    },
  };
}

for (const protocol of ['json', 'tnetstring'] as const) {
  test(`real Mongrel2 → our parser → our reply → client (${protocol})`, async () => {
    const r = await rig(protocol);
    const base = `http://127.0.0.1:${r.m2.port}`;

    // GET with a query string
    const getting = request(`${base}/handler/items?id=7&name=caf%C3%A9`, { dispatcher: agent, headers: { 'x-dup': ['a', 'b'] } });
    const get = await r.next();
    assert.equal(get.sender, r.sender);
    assert.equal(get.encoding, protocol);
    assert.equal(get.kind, 'http');
    assert.equal(get.path, '/handler/items');
    assert.equal(get.headers.METHOD, 'GET');
    assert.equal(get.headers.QUERY, 'id=7&name=caf%C3%A9');
    assert.equal(get.headers.PATTERN, '/handler');
    assert.deepEqual(get.headers['x-dup'], ['a', 'b']);
    assert.equal(get.body.length, 0);
    const body = 'héllo from our encoder';
    await r.pub.send(
      encodeReply(r.sender, get.connId, `HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`),
    );
    const res = await getting;
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), body);

    // POST with a binary body, answered in three streamed messages
    const payload = Buffer.from([0, 255, 254, 0x2c, 0x3a, 0x7d, 0x5d, 1, 13, 10]);
    const posting = request(`${base}/handler/bin`, { dispatcher: agent, method: 'POST', body: payload });
    const post = await r.next();
    assert.equal(post.headers.METHOD, 'POST');
    assert.ok(post.body.equals(payload));
    await r.pub.send(encodeReply(r.sender, post.connId, 'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n'));
    await r.pub.send(encodeReply(r.sender, post.connId, `${payload.length.toString(16)}\r\n`));
    await r.pub.send(encodeReply(r.sender, post.connId, Buffer.concat([payload, Buffer.from('\r\n0\r\n\r\n')])));
    const posted = await posting;
    assert.equal(posted.statusCode, 201);
    assert.ok(Buffer.from(await posted.body.arrayBuffer()).equals(payload));

    // The close message ends a read-until-close response.
    const closing = request(`${base}/handler/close`, { dispatcher: agent });
    const close = await r.next();
    await r.pub.send(encodeReply(r.sender, close.connId, 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close'));
    await r.pub.send(encodeClose(r.sender, close.connId));
    const closed = await closing;
    assert.equal(await closed.body.text(), 'until close');

    // A client that goes away produces a disconnect notification for its id.
    const controller = new AbortController();
    const abandoned = request(`${base}/handler/slow`, { dispatcher: agent, signal: controller.signal });
    const slow = await r.next();
    controller.abort();
    await assert.rejects(abandoned);
    const notice = await r.next();
    assert.equal(notice.kind, 'disconnect');
    assert.equal(notice.connId, slow.connId);
    assert.equal(notice.path, '@*');
  });
}
