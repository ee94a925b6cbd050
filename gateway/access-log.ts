/**
 * The gateway's access log: one line per answered request, of every route
 * kind (app, Handler, Dir, Proxy) and of the gateway's own answers (404,
 * 413, 503, refused requests).
 *
 * Two forms: NDJSON through the gateway's pino logger (`-`), or the
 * Combined Log Format (Apache's, which every log tool reads) appended to a
 * file, such as the `access_log` of the Server in mongrel2.conf. Mongrel2
 * writes its own tnetstring-framed format there; the gateway writes the
 * format users know instead. Writes go through a buffered stream, so a
 * request never waits for the disk.
 */
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';

export interface AccessEntry {
  req: IncomingMessage;
  res: ServerResponse;
  /** Time from the request head to the end of the response. */
  ms: number;
  /** Which kind of route answered ('none': the gateway itself, before any route). */
  kind: string;
}

export interface AccessLog {
  write(entry: AccessEntry): void;
  close(): Promise<void>;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number): string => (n < 10 ? `0${n}` : String(n));

/** `[10/Oct/2026:13:55:36 +0000]`, in UTC. */
function clfTime(d: Date): string {
  return `[${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000]`;
}

/** A header value as CLF quotes it: `"` and `\` escaped, control bytes dropped (no log injection). */
function quoted(value: string | string[] | undefined): string {
  if (value === undefined) return '"-"';
  const text = Array.isArray(value) ? value.join(', ') : value;
  // eslint-disable-next-line no-control-regex
  return `"${text.replace(/[\\"]/g, '\\$&').replace(/[\x00-\x1f\x7f]/g, '')}"`;
}

/**
 * One Combined Log Format line, with the route kind and the time in ms
 * appended. The size is the Content-Length the response set through
 * setHeader, else `-` (CLF's "unknown"): heads written at once with
 * writeHead() are not readable back through node's public API.
 */
export function combinedLine(e: AccessEntry, now = new Date()): string {
  const { req, res } = e;
  const length = res.getHeader('content-length');
  const bytes = length === undefined || req.method === 'HEAD' ? '-' : String(length);
  const target = quoted(`${req.method ?? '-'} ${req.url ?? '-'} HTTP/${req.httpVersion}`);
  return `${req.socket.remoteAddress ?? '-'} - - ${clfTime(now)} ${target} ${res.statusCode} ${bytes} ${quoted(req.headers.referer)} ${quoted(req.headers['user-agent'])} ${e.kind} ${e.ms.toFixed(3)}\n`;
}

/** Appends Combined Log Format lines to `file` (its folder is made if missing). */
export function fileAccessLog(file: string): AccessLog {
  mkdirSync(dirname(file), { recursive: true });
  const stream: WriteStream = createWriteStream(file, { flags: 'a' });
  return {
    write: (e) => void stream.write(combinedLine(e)),
    close: () => new Promise<void>((resolve) => stream.end(resolve)),
  };
}

/** NDJSON `request` lines through the gateway's logger. */
export function loggerAccessLog(log: Logger): AccessLog {
  return {
    write: ({ req, res, ms, kind }) =>
      log.info({ kind, method: req.method, path: req.url, status: res.statusCode, ms: Math.round(ms * 1000) / 1000, remote: req.socket.remoteAddress }, 'request'),
    close: () => Promise.resolve(),
  };
}
