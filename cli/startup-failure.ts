/**
 * Turns what Gateway.start() throws into one line that names what failed:
 * the HTTP address, the Handler endpoint and its config line, or the
 * --mongrel2 spec. The gateway has closed what it had opened by then.
 */
import { M2gateError } from '../protocol/errors.js';
import type { HandlerTarget } from '../gateway/handler/index.js';
import { configLineOf, type LoadedConfig } from './config.js';

export interface StartContext {
  loaded: LoadedConfig;
  pools: readonly HandlerTarget[];
  mongrel2: { sendSpec: string; recvSpec: string } | undefined;
  /** Where the HTTP server was to listen. */
  host: string;
  port: number;
  /** Where that port came from: '--port' or the config file. */
  portFrom: string;
}

const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'not an address of this host',
};

/** The line to print, or undefined for an error nobody expects (its stack is then worth showing). */
export function describeStartFailure(err: unknown, ctx: StartContext): string | undefined {
  if (err instanceof M2gateError) return err.message;
  if (!(err instanceof Error)) return undefined;
  const e = err as NodeJS.ErrnoException & { address?: unknown; port?: unknown };
  if (e.syscall === 'listen' || e.code === 'ERR_SOCKET_BAD_PORT') {
    const why = (e.code && LISTEN_ERRORS[e.code]) ?? e.message;
    return `HTTP address ${ctx.host}:${ctx.port} (from ${ctx.portFrom}): ${why}`;
  }
  if (typeof e.address !== 'string') return undefined;
  // A zeromq error: `address` is the endpoint it could not bind or connect.
  const spec = e.address;
  if (ctx.mongrel2?.sendSpec === spec) return `--mongrel2 SEND_SPEC '${spec}': ${e.message}`;
  if (ctx.mongrel2?.recvSpec === spec) return `--mongrel2 RECV_SPEC '${spec}': ${e.message}`;
  const pool = ctx.pools.find((p) => p.config.sendSpec === spec || p.config.recvSpec === spec);
  if (!pool) return `'${spec}': ${e.message}`;
  const field = pool.config.sendSpec === spec ? 'send_spec' : 'recv_spec';
  return `${configLineOf(ctx.loaded, spec)}: Handler ${field} '${spec}': ${e.message}`;
}
