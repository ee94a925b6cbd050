/**
 * Which front a service talks to, from its options: Brubeck, Mongrel2's
 * PUSH/SUB, the m2gate link to one gateway, or to several (a repeated
 * --connect, or a --connect-file that may list more later).
 */
import type { Logger } from 'pino';
import type { Front } from './front.js';
import { BrubeckFront } from './brubeck-front.js';
import { Mongrel2Front } from './mongrel2-front.js';
import { LinkFront } from './link-front.js';
import { MultiLinkFront } from './multi-link-front.js';
import type { ResolvedServiceOptions } from './service-options.js';
import type { ServiceMetrics } from '../admin/service-metrics.js';

/** `gateways`: the link's endpoints (readGatewayList), empty without the link. */
export function makeFront(opts: ResolvedServiceOptions, gateways: string[], name: string, log: Logger, metrics: ServiceMetrics | undefined): Front {
  if (opts.brubeck !== undefined) return new BrubeckFront(opts.brubeck, log);
  if (!opts.link) return new Mongrel2Front(opts.send, opts.recv, log, opts.curve);
  const link = {
    credit: opts.credit,
    threads: opts.workers,
    // The gateway's logs and dashboard name the service by this.
    name,
    heartbeatMs: opts.heartbeatMs,
    liveness: opts.liveness,
    curve: opts.curve,
    log,
    report: metrics && (async () => Buffer.from(JSON.stringify(await metrics.registry.getMetricsAsJSON()))),
  };
  // One gateway and no file to add more from: the plain link, as before there were several.
  if (gateways.length === 1 && opts.connectFile === undefined) return new LinkFront({ ...link, endpoint: gateways[0]! });
  return new MultiLinkFront({ ...link, endpoints: gateways, drainTimeoutMs: opts.drainTimeoutMs });
}
