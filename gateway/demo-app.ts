/**
 * The built-in demo app, after Brubeck's demo_service_client.py: one route
 * answered in the gateway, one that waits for the slow echo service, one that
 * fires and forgets with a response handler.
 */
import { defineApp } from './app.js';

function echoPath(query: Record<string, string | string[]>, defaultMs: number): string {
  const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);
  const params = new URLSearchParams({ ms: first(query.ms) ?? String(defaultMs), data: first(query.data) ?? 'hello from the slow service' });
  return `/svc/slow?${params.toString()}`;
}

export default defineApp({
  'GET /app/hello': () => 'hello from the gateway\n',

  /** Synchronous pattern: wait for the service's reply and return its data. */
  'GET /service/sync': async (req, ctx) => {
    const reply = await ctx.call(echoPath(req.query, 500));
    if (reply.status !== 200) return { status: 502, body: `the service answered ${reply.status}\n` };
    return { data: (reply.json() as { data: unknown }).data, via: 'ctx.call' };
  },

  /** Asynchronous pattern: return at once; the response handler logs the reply later. */
  'GET /service/async': (req, ctx) => {
    const path = echoPath(req.query, 500);
    ctx.send(path, {}, (err, reply) => {
      if (err) ctx.log.warn({ code: err.code, path }, 'async service call failed');
      else ctx.log.info({ status: reply!.status, data: (reply!.json() as { data: unknown }).data }, 'async service reply');
    });
    return { status: 202, body: { sent: path, via: 'ctx.send' } };
  },
});
