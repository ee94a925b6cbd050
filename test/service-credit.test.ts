// The service's side of link credit (workers/credit.ts): each charged message
// returns exactly one credit, with its reply or given back, and uncharged ones
// (PUSH/SUB) return none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CreditLedger, type CreditHolder } from '../workers/credit.js';
import type { Front } from '../workers/front.js';

function fakeFront(): Front & { sent: Array<[string, number]>; given: number } {
  return {
    sent: [],
    given: 0,
    connect() {},
    send(message: Buffer, credit: number) {
      this.sent.push([message.toString(), credit]);
    },
    giveBack(credit: number) {
      this.given += credit;
    },
    stopTaking() {},
    close: () => Promise.resolve(),
    describe: {},
  };
}

test('a charged request returns its credit with its reply, once', () => {
  const front = fakeFront();
  const ledger = new CreditLedger(front);
  const req: CreditHolder = { charged: false };
  ledger.hold(req, true);
  assert.equal(ledger.held, 1);
  ledger.reply(req, Buffer.from('r1'));
  ledger.refund(req);
  assert.deepEqual(front.sent, [['r1', 1]]);
  assert.equal(front.given, 0);
  assert.equal(ledger.held, 0);
});

test('a charged request that ends without a reply gives its credit back, once', () => {
  const front = fakeFront();
  const ledger = new CreditLedger(front);
  const req: CreditHolder = { charged: false };
  ledger.hold(req, true);
  ledger.refund(req);
  ledger.refund(req);
  ledger.reply(req, Buffer.from('late'));
  assert.equal(front.given, 1);
  assert.deepEqual(front.sent, [['late', 0]]);
  assert.equal(ledger.held, 0);
});

test('uncharged requests and messages return nothing; a charged message that is no request gives one back', () => {
  const front = fakeFront();
  const ledger = new CreditLedger(front);
  const req: CreditHolder = { charged: false };
  ledger.hold(req, false);
  assert.equal(ledger.held, 0);
  ledger.reply(req, Buffer.from('r'));
  ledger.refund(req);
  ledger.refundMessage(false);
  assert.equal(front.given, 0);
  ledger.refundMessage(true);
  assert.equal(front.given, 1);
  assert.deepEqual(front.sent, [['r', 0]]);
});
