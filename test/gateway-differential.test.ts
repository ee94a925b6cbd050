// Differential test through the FULL gateway: the same raw request bytes go to the real
// Mongrel2 1.12.2 and to the m2gate gateway (node:http → request hygiene → route table →
// body collection → handler pool), each configured with the same Handler (`/handler`, same
// send_ident, same header encoding). The messages the two fake handlers receive are compared
// field by field, for both encodings; where Mongrel2's key order is deterministic the bytes
// must be identical once the CONN_IDs (each front's own counter) are aligned.
// test/differential-request.test.ts does the same for the request builder alone; this one
// also proves the gateway's plumbing (PATTERN, REMOTE_ADDR, bodies, encodings) adds nothing.
// Every known difference is asserted, so a change on either side fails the test. The cases are
// test/helpers/differential-cases.ts, shared with test/differential-request.test.ts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Publisher } from 'zeromq';
import { parseRequest, type HeaderEncoding, type M2Request } from '../protocol/m2-request.js';
import { encodeClose, encodeReply } from '../protocol/m2-reply.js';
import { DIFFERENTIAL_CASES, DIFFERENTIAL_PATTERN } from './helpers/differential-cases.js';
import { requireMongrel2, startMongrel2Handler, type Mongrel2 } from './helpers/mongrel2.js';
import { fakeHandler, handlerConf, startGateway, type FakeHandler, type GatewayRig } from './helpers/gateway.js';

const PATTERN = DIFFERENTIAL_PATTERN;
const LIMIT = 1024;
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

interface Received {
  raw: Buffer;
  msg: M2Request;
}

// ---- the real Mongrel2 ----------------------------------------------------------------------

interface Mongrel2Rig {
  m2: Mongrel2;
  pub: Publisher;
  next(): Promise<Received>;
}

async function mongrel2Rig(sender: string, protocol: HeaderEncoding): Promise<Mongrel2Rig> {
  const { m2, pull, pub, stop } = await startMongrel2Handler(
    { route: PATTERN, sendIdent: sender, protocol },
    { settings: { 'limits.content_length': LIMIT, 'upload.temp_store': 'tmp/upload.XXXXXX' } },
  );
  cleanups.push(stop);
  return {
    m2,
    pub,
    async next() {
      for (;;) {
        const [frame] = await pull.receive();
        const msg = parseRequest(frame!);
        if (msg.path !== '@*') return { raw: frame!, msg };
      }
    },
  };
}

// ---- the m2gate gateway, configured alike ---------------------------------------------------

interface GatewaySide {
  rig: GatewayRig;
  handler: FakeHandler;
}

async function gatewaySide(sender: string, protocol: HeaderEncoding): Promise<GatewaySide> {
  const h = handlerConf(PATTERN, sender, protocol);
  const rig = await startGateway({ handlers: [h], settings: { 'limits.content_length': LIMIT } });
  const handler = await fakeHandler(h, rig.pool(PATTERN));
  cleanups.push(async () => {
    handler.stop();
    await rig.close();
  });
  return { rig, handler };
}

requireMongrel2(); // fails, never skips, when Mongrel2 is not installed
const SENDERS = { json: 'd1ff0000-3333-4000-8000-0000000000cc', tnetstring: 'd1ff0000-4444-4000-8000-0000000000dd' } as const;
const sides = {
  json: { m2: await mongrel2Rig(SENDERS.json, 'json'), gw: await gatewaySide(SENDERS.json, 'json') },
  tnetstring: { m2: await mongrel2Rig(SENDERS.tnetstring, 'tnetstring'), gw: await gatewaySide(SENDERS.tnetstring, 'tnetstring') },
};

interface FromMongrel2 extends Received {
  /** The upload-start message and the temp file's bytes, for bodies Mongrel2 spools (§3.4). */
  upload?: { start: M2Request; file: Buffer };
}

async function viaMongrel2(r: Mongrel2Rig, sender: string, bytes: Buffer): Promise<FromMongrel2> {
  const socket = connect(r.m2.port, '127.0.0.1');
  socket.on('data', () => {});
  const closed = once(socket, 'close');
  socket.write(bytes);
  let got = await r.next();
  let upload: FromMongrel2['upload'];
  if (got.msg.kind === 'upload-start') {
    const start = got.msg;
    got = await r.next();
    assert.equal(got.msg.kind, 'upload-done');
    assert.equal(got.msg.connId, start.connId);
    upload = { start, file: readFileSync(join(r.m2.dir, got.msg.headers['x-mongrel2-upload-done'] as string)) };
  }
  await r.pub.send(encodeReply(sender, got.msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
  await r.pub.send(encodeClose(sender, got.msg.connId));
  await closed;
  return upload ? { ...got, upload } : got;
}

async function viaGateway(side: GatewaySide, bytes: Buffer, head: boolean): Promise<Received> {
  const c = await side.rig.client();
  c.write(bytes);
  const got = await side.handler.next('the request through the gateway');
  await side.handler.reply(got.msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
  assert.equal((await c.response({ head })).status, 200);
  c.destroy();
  return got;
}

/** `raw` with its CONN_ID field replaced, so two fronts' messages compare byte for byte. */
function withConnId(raw: Buffer, msg: M2Request, connId: number): string {
  const prefix = `${msg.sender} ${msg.connId} `;
  const text = raw.toString('latin1');
  assert.ok(text.startsWith(prefix));
  return `${msg.sender} ${connId} ${text.slice(prefix.length)}`;
}

// ---- the cases --------------------------------------------------------------------------------

const UPLOAD_KEYS = ['x-mongrel2-upload-start', 'x-mongrel2-upload-done'];

for (const c of DIFFERENTIAL_CASES) {
  test(`Mongrel2 and the m2gate gateway send the handler the same message: ${c.name}`, async () => {
    for (const encoding of ['json', 'tnetstring'] as const) {
      const where = `${c.name} (${encoding})`;
      const side = sides[encoding];
      const theirs = await viaMongrel2(side.m2, SENDERS[encoding], c.bytes);
      if (c.refusedWith !== undefined) {
        // A deliberate difference: Mongrel2 served it (above); the gateway refuses it before
        // any handler sees it (the fake handler's next message is the next case's).
        const client = await side.gw.rig.client();
        client.write(c.bytes);
        assert.equal((await client.response()).status, c.refusedWith, where);
        client.destroy();
        continue;
      }
      const ours = await viaGateway(side.gw, c.bytes, c.bytes.subarray(0, 5).toString() === 'HEAD ');

      assert.equal(ours.msg.encoding, encoding, where);
      assert.equal(ours.msg.sender, theirs.msg.sender, where);
      assert.equal(ours.msg.path, theirs.msg.path, where);
      const theirHeaders = { ...theirs.msg.headers };
      if (theirs.upload) {
        // §3.3/§3.4: Mongrel2 spools a chunked body to a temp file and sends upload-start and
        // upload-done with empty bodies; the gateway inlines the de-chunked body (it is under
        // limits.content_length). Same bytes, different delivery: compare the file with our body.
        assert.equal(theirs.msg.kind, 'upload-done');
        assert.equal(theirs.msg.body.length, 0);
        assert.equal(ours.msg.kind, 'http');
        assert.ok(theirs.upload.file.equals(ours.msg.body), where);
        for (const k of UPLOAD_KEYS) delete theirHeaders[k];
      } else {
        assert.equal(ours.msg.kind, theirs.msg.kind, where);
        assert.ok(ours.msg.body.equals(theirs.msg.body), where);
      }
      assert.deepEqual(Object.keys(ours.msg.headers).sort(), Object.keys(theirHeaders).sort(), where);
      for (const key of Object.keys(theirHeaders)) {
        const known = c.differs?.[key];
        if (known) {
          assert.deepEqual([theirHeaders[key], ours.msg.headers[key]], known, `${where}: known difference in ${key}`);
          continue;
        }
        // REMOTE_ADDR and x-forwarded-for included: both fronts see the client at 127.0.0.1.
        assert.deepEqual(ours.msg.headers[key], theirHeaders[key], `${where}: header ${key}`);
      }
      if (c.exact) assert.equal(withConnId(ours.raw, ours.msg, theirs.msg.connId), theirs.raw.toString('latin1'), where);
    }
  });
}
