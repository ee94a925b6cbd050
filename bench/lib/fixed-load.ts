/**
 * Exactly N GET requests over a few keep-alive connections, each answer
 * checked: the load of bench:instructions, where what counts is how many
 * requests the servers handled, not how fast (wrk sends as many as it can in
 * a time window, so its count is not fixed).
 */
import { Agent, request } from 'node:http';

export interface FixedLoadResult {
  requests: number;
  seconds: number;
}

function getOnce(agent: Agent, url: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * A keep-alive agent of `concurrency` connections. The caller destroys it
 * after the last count: closing connections inside a measured window would
 * count the close (and, behind Mongrel2, its disconnect notices).
 */
export function loadAgent(concurrency: number): Agent {
  return new Agent({ keepAlive: true, maxSockets: concurrency });
}

/**
 * Sends `count` GETs of `url`, `concurrency` at a time on the agent's
 * keep-alive connections, and resolves when all were answered 200.
 *
 * @throws Error on the first answer that is not 200, or a socket error or
 * timeout (`timeoutMs` per request), naming the request's number and what came back.
 */
export async function fixedLoad(agent: Agent, url: string, count: number, concurrency: number, timeoutMs = 60_000): Promise<FixedLoadResult> {
  const t0 = process.hrtime.bigint();
  let sent = 0;
  let failure: Error | undefined;
  const lane = async (): Promise<void> => {
    while (sent < count && failure === undefined) {
      const n = ++sent;
      try {
        const answer = await getOnce(agent, url, timeoutMs);
        if (answer.status !== 200) throw new Error(`status ${answer.status}: ${answer.body.slice(0, 200)}`);
      } catch (err) {
        failure ??= new Error(`request ${n} of ${count} to ${url} failed: ${(err as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
  if (failure !== undefined) throw failure;
  return { requests: count, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
}
