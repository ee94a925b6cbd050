/**
 * The app module of the `call` scenario (loaded with `m2gate gateway --app`).
 *
 *   GET /app/trivial     answers 'hello' in the gateway: the cost of an app route alone
 *   GET /app/call        answers the body of `await ctx.call('/svc/hello')`: the same
 *                        route plus one Brubeck-style service call
 *   GET /app/call-stats  the ctx.call round trips timed inside the gateway since the last
 *                        `?reset=1`: count and percentiles in microseconds
 *
 * Timing inside the route isolates the service call from HTTP: it starts just
 * before ctx.call and stops when its promise resumes the route, the same
 * points the DEALER/ROUTER floor (echo-dealer-router.ts) times its messages at.
 */
import { createHistogram } from 'node:perf_hooks';
import type { AppDefinition } from '../gateway/app.js';

const calls = createHistogram();

const us = (ns: number): number => Math.round(ns / 10) / 100;

export default {
  'GET /app/trivial': () => 'hello',

  'GET /app/call': async (_req, ctx) => {
    const started = process.hrtime.bigint();
    const reply = await ctx.call('/svc/hello');
    calls.record(process.hrtime.bigint() - started);
    if (reply.status !== 200) return { status: 502, body: `the service answered ${reply.status}\n` };
    return reply.text();
  },

  'GET /app/call-stats': (req) => {
    const stats = {
      count: calls.count,
      p50Us: us(calls.percentile(50)),
      p90Us: us(calls.percentile(90)),
      p99Us: us(calls.percentile(99)),
      maxUs: us(calls.max),
    };
    if (req.query.reset !== undefined) calls.reset();
    return stats;
  },
} satisfies AppDefinition;
