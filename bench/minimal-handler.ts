/**
 * The baseline handler for the `service` scenario: the least a hand-written
 * zeromq.js Mongrel2 handler can do. PULL from the front's send_spec, PUB to
 * its recv_spec (§5.1), one receive loop, no routing, no worker threads, no
 * logging; every HTTP request is answered with the same 5-byte response.
 *
 * It decodes requests and encodes replies with m2gate's own codec
 * (parseRequest / encodeReply from protocol/), so the service scenario's ratio
 * measures what m2gate service adds on top of the codec: routing, the piscina
 * hop, per-request logging, ordering and bookkeeping.
 *
 *   node --import tsx bench/minimal-handler.ts --send tcp://127.0.0.1:9997 --recv tcp://127.0.0.1:9996
 */
import { parseArgs } from 'node:util';
import { Publisher, Pull } from 'zeromq';
import { parseRequest } from '../protocol/m2-request.js';
import { encodeReply } from '../protocol/m2-reply.js';

const HELLO = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello');

const { values } = parseArgs({ options: { send: { type: 'string' }, recv: { type: 'string' } } });
if (values.send === undefined || values.recv === undefined) {
  process.stderr.write('usage: minimal-handler.ts --send SPEC --recv SPEC\n');
  process.exit(2);
}

const pull = new Pull();
const pub = new Publisher();
// Replies published before the PUB connection is up are lost (§5.1): take
// requests only once the reply path exists, as m2gate service does.
const replyPathUp = new Promise<void>((resolve) => pub.events.on('handshake', () => resolve()));
pub.connect(values.recv);
await replyPathUp;
pull.connect(values.send);
process.stdout.write('minimal handler connected\n');

const stop = (): void => {
  pull.close();
  pub.close();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

let answered = 0;
try {
  for await (const [frame] of pull) {
    if (frame === undefined) continue;
    const req = parseRequest(frame);
    // Disconnect notices (§3.6) and other JSON messages need no answer.
    if (req.kind !== 'http') continue;
    // A PUB send does not block (it drops past the high-water mark), so awaiting
    // it here keeps the one-pending-send rule of zeromq.js at almost no cost.
    await pub.send(encodeReply(req.sender, req.connId, HELLO));
    answered++;
  }
} catch (err) {
  if (!pull.closed) throw err;
}
process.stdout.write(`minimal handler stopped after ${answered} replies\n`);
