// The gateway's own short answers (gateway/short-answer.ts): one set of bytes for every
// 4xx/5xx m2gate writes itself, whichever part of the gateway writes it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { sendShortAnswer, shortAnswerBytes, type ShortAnswerOptions } from '../gateway/short-answer.js';

let answer: (res: ServerResponse) => void = () => {};
const server = createServer((_req, res) => answer(res));
server.listen(0, '127.0.0.1');
await once(server, 'listening');
after(() => void server.close());

/** The raw bytes the server sends for one request (the connection closes after it). */
async function rawAnswer(request: string, write: (res: ServerResponse) => void): Promise<string> {
  answer = write;
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.write(request);
  await once(socket, 'close');
  return Buffer.concat(chunks).toString('latin1');
}

const GET = 'GET /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';
const HEAD = 'HEAD /x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';
const headOf = (raw: string): string => raw.slice(0, raw.indexOf('\r\n\r\n'));
const bodyOf = (raw: string): string => raw.slice(raw.indexOf('\r\n\r\n') + 4);

test('a short answer is text/plain; charset=utf-8 with the standard reason and an exact byte length', async () => {
  const raw = await rawAnswer(GET, (res) => sendShortAnswer(res, 504, 'Gateway Timeout'));
  assert.match(raw, /^HTTP\/1\.1 504 Gateway Timeout\r\n/);
  assert.match(headOf(raw), /\r\nContent-Type: text\/plain; charset=utf-8\r\n/);
  assert.match(headOf(raw), /\r\nContent-Length: 15(\r\n|$)/);
  assert.equal(bodyOf(raw), 'Gateway Timeout');
  // Lengths are bytes, not UTF-16 units.
  const utf8 = await rawAnswer(GET, (res) => sendShortAnswer(res, 404, 'Nicht gefunden: ü'));
  assert.match(headOf(utf8), /\r\nContent-Length: 18(\r\n|$)/);
});

test('options: Retry-After in seconds, Connection: close, extra headers', async () => {
  const opts: ShortAnswerOptions = { retryAfterS: 7, close: true, headers: { Allow: 'GET, HEAD' } };
  const head = headOf(await rawAnswer(GET, (res) => sendShortAnswer(res, 503, 'Service Unavailable', opts)));
  assert.match(head, /\r\nRetry-After: 7\r\n/);
  assert.match(head, /\r\nConnection: close(\r\n|$)/);
  assert.match(head, /\r\nAllow: GET, HEAD\r\n/);
  const plain = headOf(await rawAnswer(GET, (res) => sendShortAnswer(res, 503, 'Service Unavailable')));
  assert.doesNotMatch(plain, /Retry-After/);
});

test('HEAD gets the same head, Content-Length included, and no body', async () => {
  const raw = await rawAnswer(HEAD, (res) => sendShortAnswer(res, 404, 'Not Found'));
  assert.match(headOf(raw), /\r\nContent-Length: 9(\r\n|$)/);
  assert.equal(bodyOf(raw), '');
});

test('after the head went, the status cannot change: the connection is cut', async () => {
  const raw = await rawAnswer(GET, (res) => {
    res.writeHead(200, { 'Content-Length': '100' });
    // Once the head is on the wire.
    res.write('partial', () => sendShortAnswer(res, 502, 'Bad Gateway'));
  });
  assert.match(raw, /^HTTP\/1\.1 200 OK\r\n/);
  assert.doesNotMatch(raw, /Bad Gateway/);
  assert.equal(bodyOf(raw), 'partial');
});

test('the raw form, for sockets without a response, has the same fields and always closes', () => {
  assert.equal(
    shortAnswerBytes(408, 'Request Timeout').toString('latin1'),
    'HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 15\r\nConnection: close\r\n\r\nRequest Timeout',
  );
});
