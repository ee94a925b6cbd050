// The m2gate link's heartbeat rule (zmq/link-liveness.ts), which both ends run: a HEARTBEAT is
// due after an interval without sending; the peer is dead after `liveness` silent intervals.
// The clock is passed in, so nothing here waits. test/link-gateway-end.test.ts and
// test/link-service.test.ts prove the same rule over real sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LIVENESS_DEFAULTS, Liveness, Verdict } from '../zmq/link-liveness.js';

test('defaults: a 1,000 ms interval and 3 silent intervals', () => {
  assert.deepEqual(LIVENESS_DEFAULTS, { heartbeatMs: 1000, liveness: 3 });
  const l = new Liveness({}, 0);
  assert.equal(l.heartbeatMs, 1000);
  assert.equal(l.check(3000), Verdict.BEAT);
  assert.equal(l.check(3001), Verdict.DEAD);
});

test('a HEARTBEAT is due once nothing was sent for a whole interval; sending anything resets it', () => {
  const l = new Liveness({ heartbeatMs: 100, liveness: 3 }, 1000);
  assert.equal(l.check(1099), Verdict.QUIET);
  assert.equal(l.check(1100), Verdict.BEAT);
  l.sent(1100);
  assert.equal(l.check(1150), Verdict.QUIET);
  assert.equal(l.check(1200), Verdict.BEAT);
});

test('the peer is dead only after more than heartbeatMs × liveness of silence; hearing anything resets it', () => {
  const l = new Liveness({ heartbeatMs: 100, liveness: 3 }, 0);
  l.sent(290);
  assert.equal(l.check(300), Verdict.QUIET, 'exactly at the deadline: still alive');
  assert.equal(l.check(301), Verdict.DEAD);
  l.heard(301);
  assert.equal(l.check(350), Verdict.QUIET);
  assert.equal(l.check(601), Verdict.BEAT, 'sent nothing since 290, heard at 301: due, not dead');
  assert.equal(l.check(602), Verdict.DEAD);
});

test('death wins over a due heartbeat: a silent peer is dropped, not pinged', () => {
  const l = new Liveness({ heartbeatMs: 100, liveness: 2 }, 0);
  assert.equal(l.check(201), Verdict.DEAD);
});
