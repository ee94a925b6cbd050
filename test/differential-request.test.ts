// Differential test: the same raw request bytes go to the real Mongrel2 1.12.2 (both header
// encodings) and to a node:http server running checkRequest + buildHeaders + encodeRequest.
// Both messages are parsed with parseRequest and compared field by field; where Mongrel2's
// key order is deterministic (no client header but Host) the bytes must be identical.
// Every known difference is asserted explicitly, so a change on either side fails the test.
// The cases are test/helpers/differential-cases.ts, shared with test/gateway-differential.test.ts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Publisher } from 'zeromq';
import { buildHeaders, type BuiltRequest } from '../gateway/m2-request-builder.js';
import { checkRequest, type Rejection } from '../gateway/request-hygiene.js';
import { encodeRequest, parseRequest, type HeaderEncoding, type M2Request } from '../protocol/m2-request.js';
import { encodeClose, encodeReply } from '../protocol/m2-reply.js';
import { DIFFERENTIAL_CASES, DIFFERENTIAL_PATTERN } from './helpers/differential-cases.js';
import { requireMongrel2, startMongrel2Handler, type Mongrel2 } from './helpers/mongrel2.js';

const PATTERN = DIFFERENTIAL_PATTERN;
const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

// ---- the real Mongrel2, configured like the fixture captures (capture-*.conf) ----

interface Rig {
  m2: Mongrel2;
  sender: string;
  pub: Publisher;
  /** The next request message, skipping Mongrel2's `@*` notifications (§3.6). */
  next(): Promise<{ raw: Buffer; msg: M2Request }>;
}

async function rig(protocol: HeaderEncoding): Promise<Rig> {
  const sender = protocol === 'json' ? 'd1ff0000-1111-4000-8000-0000000000aa' : 'd1ff0000-2222-4000-8000-0000000000bb';
  const { m2, pull, pub, stop } = await startMongrel2Handler(
    { route: PATTERN, sendIdent: sender, protocol },
    { settings: { 'limits.content_length': 1024, 'upload.temp_store': 'tmp/upload.XXXXXX' } },
  );
  cleanups.push(stop);
  return {
    m2,
    sender,
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

requireMongrel2(); // fails, never skips, when Mongrel2 is not installed
const rigs = { json: await rig('json'), tnetstring: await rig('tnetstring') };

interface FromMongrel2 {
  raw: Buffer;
  msg: M2Request;
  /** The upload-start message and the temp file's bytes, for bodies Mongrel2 spools (§3.4). */
  upload?: { start: M2Request; file: Buffer };
}

async function viaMongrel2(r: Rig, bytes: Buffer): Promise<FromMongrel2> {
  const socket = connect(r.m2.port, '127.0.0.1');
  socket.on('data', () => {});
  const closed = once(socket, 'close');
  socket.write(bytes);
  let { raw, msg } = await r.next();
  let upload: FromMongrel2['upload'];
  if (msg.kind === 'upload-start') {
    const start = msg;
    ({ raw, msg } = await r.next());
    assert.equal(msg.kind, 'upload-done');
    assert.equal(msg.connId, start.connId);
    upload = { start, file: readFileSync(join(r.m2.dir, msg.headers['x-mongrel2-upload-done'] as string)) };
  }
  await r.pub.send(encodeReply(r.sender, msg.connId, 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
  await r.pub.send(encodeClose(r.sender, msg.connId));
  await closed;
  return upload ? { raw, msg, upload } : { raw, msg };
}

// ---- the node:http side, as the gateway will run it ----

interface FromNode {
  verdict: Rejection | undefined;
  built: Record<HeaderEncoding, BuiltRequest>;
  body: Buffer;
}
let waiting: ((seen: FromNode) => void) | undefined;
const server = createServer({ requireHostHeader: false }, (req, res) => {
  const verdict = checkRequest(req);
  const ctx = { pattern: PATTERN, remoteAddr: req.socket.remoteAddress ?? '', scheme: 'http' as const };
  const built = { json: buildHeaders(req, { ...ctx, encoding: 'json' }), tnetstring: buildHeaders(req, { ...ctx, encoding: 'tnetstring' }) };
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    waiting?.({ verdict, built, body: Buffer.concat(chunks) });
    waiting = undefined;
    res.writeHead(verdict?.status ?? 200, { connection: 'close', 'content-length': '0' }).end();
  });
});
server.maxHeadersCount = 0;
server.listen(0, '127.0.0.1');
await once(server, 'listening');
cleanups.push(() => void server.close());

async function viaNode(bytes: Buffer): Promise<FromNode> {
  const seen = new Promise<FromNode>((resolve) => (waiting = resolve));
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
  socket.on('data', () => {});
  socket.write(bytes);
  const [result] = await Promise.all([seen, once(socket, 'close')]);
  return result;
}

// ---- the cases ----

const UPLOAD_KEYS = ['x-mongrel2-upload-start', 'x-mongrel2-upload-done'];

for (const c of DIFFERENTIAL_CASES) {
  test(`Mongrel2 and m2gate agree: ${c.name}`, async () => {
    const node = await viaNode(c.bytes);
    assert.equal(node.verdict?.status, c.refusedWith);
    for (const encoding of ['json', 'tnetstring'] as const) {
      const r = rigs[encoding];
      const m2 = await viaMongrel2(r, c.bytes);
      const built = node.built[encoding];
      const raw = encodeRequest({ sender: r.sender, connId: m2.msg.connId, path: built.path, headers: built.headers, body: node.body }, encoding);
      const ours = parseRequest(raw);
      const where = `${c.name} (${encoding})`;

      assert.equal(ours.encoding, encoding);
      assert.equal(ours.sender, m2.msg.sender);
      assert.equal(ours.path, m2.msg.path, where);
      const theirs = { ...m2.msg.headers };
      if (m2.upload) {
        // §3.3: Mongrel2 spools a chunked body to a temp file (de-chunked) and sends two
        // messages with empty bodies; spooling is not buildHeaders' job, so compare the
        // rest: headers without the upload keys, and the file against node's de-chunked body.
        assert.equal(m2.upload.start.kind, 'upload-start');
        assert.equal(m2.msg.kind, 'upload-done');
        assert.equal(m2.msg.body.length, 0);
        assert.ok(m2.upload.file.equals(node.body), where);
        assert.equal(ours.kind, 'http');
        for (const k of UPLOAD_KEYS) delete theirs[k];
      } else {
        assert.equal(ours.kind, m2.msg.kind, where);
        assert.ok(ours.body.equals(m2.msg.body), where);
      }
      assert.deepEqual(Object.keys(ours.headers).sort(), Object.keys(theirs).sort(), where);
      for (const key of Object.keys(theirs)) {
        if (key === 'REMOTE_ADDR' || key === 'x-forwarded-for') {
          assert.equal(typeof ours.headers[key], 'string');
          assert.equal(typeof theirs[key], 'string');
          continue;
        }
        const known = c.differs?.[key];
        if (known) {
          assert.deepEqual([theirs[key], ours.headers[key]], known, `${where}: known difference in ${key}`);
          continue;
        }
        assert.deepEqual(ours.headers[key], theirs[key], `${where}: header ${key}`);
      }
      if (c.exact) assert.equal(raw.toString('latin1'), m2.raw.toString('latin1'), where);
    }
  });
}
