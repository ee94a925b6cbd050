/**
 * Static files for a `Dir` route (§7), like Mongrel2's Dir handler but hardened.
 *
 * Deliberate differences from Mongrel2 1.12.2 (each also noted where it is implemented):
 * - Containment is checked against the *real* base path plus a path separator, so base `www/`
 *   never serves `www-secret/x` (Mongrel2 compares a bare string prefix and does serve it).
 *   `..` segments are refused outright (404) instead of being resolved, even when they would
 *   stay inside the base.
 * - A directory without its trailing slash redirects to `<path>/<?query>` (a relative
 *   reference), not Mongrel2's broken `//<Host><URI>/`, which puts the slash after the query.
 * - The ETag is a quoted strong tag `"<hex mtime ms>-<hex size>"` (Mongrel2: unquoted
 *   `<hex mtime s>-<hex size>`, which is not a valid entity-tag); conditionals follow RFC 9110
 *   §13.2.2 (a well-formed but non-matching `If-Match` is 412 too, and `W/` tags compare weakly).
 * - 304 carries no `Content-Length` (Mongrel2 sends `Content-Length: 0`, which RFC 9110 §8.6
 *   forbids unless it equals the 200 length).
 * - Invalid percent-encoding, overlong UTF-8, NUL, encoded `/` or `\` inside a segment, FIFOs,
 *   devices and unreadable files all answer 404 `Not Found` (§9 body), never 400/403/500, so
 *   probing learns nothing about what exists outside the base.
 * - `cache_ttl` is not used: every request stats the file, so there is no stale `Date`/header.
 * - Content types come from the `mime-types` package (e.g. `.js` → `text/javascript`, where
 *   Mongrel2's table says `application/x-javascript`); config `mimetypes` override it.
 * - Hidden files (`.name`) are served, as Mongrel2 does: the base is the publishing boundary.
 * - `Range` is ignored (full 200), as in Mongrel2.
 *
 * Residual race (documented, not fixable portably): a local user who can write inside the base
 * could swap a directory for a symlink between `realpath` and `open`. The final component is
 * opened with O_NOFOLLOW, which narrows the window to intermediate directories.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { once } from 'node:events';
import { constants as FS, type Stats } from 'node:fs';
import { open, realpath, type FileHandle } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { lookup as lookupMime } from 'mime-types';
import type { ConfigDir } from '../protocol/mongrel2-conf.js';

export interface DirTargetOptions {
  /** Dir `base` is relative to this, like Mongrel2's working directory / chroot (§12.3). */
  cwd: string;
  /** `'.ext' -> type` overrides from mongrel2.conf `mimetypes` (a key without a dot gets one). */
  mimetypes?: Record<string, string>;
}

// Failures that mean "no such servable file": answered 404 like a missing file (§7, §9).
// EACCES/EPERM included on purpose: a 403 would confirm the file exists.
const NOT_FOUND_CODES = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'ENAMETOOLONG', 'EACCES', 'EPERM']);
// O_NONBLOCK: opening a FIFO must not block a libuv thread forever (it is then refused as not
// a regular file). O_NOFOLLOW: the final component must not be a symlink swapped in after
// realpath. Both are 0 where the platform lacks them.
const OPEN_FLAGS = FS.O_RDONLY | (FS.O_NOFOLLOW ?? 0) | (FS.O_NONBLOCK ?? 0);
const ETAG_LIST = /(?:W\/)?"[^"]*"/g;

/**
 * Decodes the path below the route prefix into plain file-name segments, or undefined (→ 404)
 * when any segment is unsafe. Splitting happens *before* decoding, so `%2f` can never become a
 * separator; a decoded `/`, `\` or NUL inside a segment is refused rather than kept literally.
 */
function safeSegments(rel: string): string[] | undefined {
  const out: string[] = [];
  for (const raw of rel.split('/')) {
    let seg: string;
    try {
      // Throws URIError on bad escapes and on overlong/invalid UTF-8 (`%c0%ae`, `%e0%80%ae`).
      seg = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (seg === '' || seg === '.') continue;
    if (seg === '..' || /[/\\\0]/.test(seg)) return undefined;
    // On Windows `C:` or `name:stream` would change the meaning of the path.
    if (sep === '\\' && seg.includes(':')) return undefined;
    out.push(seg);
  }
  return out;
}

function isInside(real: string, baseReal: string): boolean {
  const root = baseReal.endsWith(sep) ? baseReal : baseReal + sep;
  return real === baseReal || real.startsWith(root);
}

function errCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/** Ends `res` with a short text/plain body (§9 style); destroys it if the head already went. */
function sendText(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, {
    ...headers,
    'Content-Type': 'text/plain',
    'Content-Length': String(Buffer.byteLength(body)),
  });
  res.end(body);
}

/** A static-file target for one `Dir(...)` config entry. */
export class DirTarget {
  readonly #base: string;
  readonly #indexFile: string;
  readonly #defaultCtype: string;
  readonly #overrides = new Map<string, string>();

  /** Does no I/O: the base may appear after construction. Never throws. */
  constructor(config: ConfigDir, options: DirTargetOptions) {
    this.#base = resolve(options.cwd, config.base);
    this.#indexFile = config.indexFile;
    this.#defaultCtype = config.defaultCtype;
    for (const [ext, type] of Object.entries(options.mimetypes ?? {})) {
      this.#overrides.set((ext.startsWith('.') ? ext : `.${ext}`).toLowerCase(), type);
    }
  }

  /**
   * Serve `req`. `prefix` is the matched route prefix (e.g. `/static/`), `path` the raw request
   * path without the query. Always ends (or destroys) the response; never throws or rejects.
   */
  async serve(req: IncomingMessage, res: ServerResponse, prefix: string, path: string): Promise<void> {
    try {
      await this.#serve(req, res, prefix, path);
    } catch {
      // Anything unexpected: 500 if we still can, else cut the connection (cannot reframe).
      try {
        sendText(res, 500, 'Internal Server Error', { Connection: 'close' });
      } catch {
        res.destroy();
      }
    }
  }

  async #serve(req: IncomingMessage, res: ServerResponse, prefix: string, path: string): Promise<void> {
    const method = req.method ?? '';
    if (method !== 'GET' && method !== 'HEAD') {
      // §7: only GET and HEAD; Mongrel2 also closes (the request may carry an unread body).
      sendText(res, 405, 'Method Not Allowed', { Allow: 'GET, HEAD', Connection: 'close' });
      return;
    }
    // §7: the prefix-longer-than-path case (route-table quirk `/us` → `/users`) is a 404.
    const segments = path.startsWith(prefix) ? safeSegments(path.slice(prefix.length)) : undefined;
    if (segments === undefined) {
      sendText(res, 404, 'Not Found');
      return;
    }
    const wantsIndex = path.endsWith('/');
    if (wantsIndex) segments.push(this.#indexFile);

    let fh: FileHandle | undefined;
    try {
      const baseReal = await realpath(this.#base);
      // §7: realpath, then require the result inside the base; the separator stops `www-secret`.
      const real = await realpath(join(baseReal, ...segments));
      if (!isInside(real, baseReal)) {
        sendText(res, 404, 'Not Found');
        return;
      }
      fh = await open(real, OPEN_FLAGS);
      const stat = await fh.stat();
      if (stat.isDirectory() && !wantsIndex) {
        await fh.close();
        fh = undefined;
        this.#redirect(req, res, path);
        return;
      }
      if (!stat.isFile()) {
        sendText(res, 404, 'Not Found');
        return;
      }
      const name = segments[segments.length - 1] ?? '';
      const handle = fh;
      fh = undefined; // ownership moves to #sendFile
      await this.#sendFile(req, res, handle, stat, name);
    } catch (err) {
      const code = errCode(err);
      if (code !== undefined && NOT_FOUND_CODES.has(code)) sendText(res, 404, 'Not Found');
      else throw err;
    } finally {
      await fh?.close().catch(() => undefined);
    }
  }

  /** §7 directory without trailing slash → 301, but to a sane relative `<path>/<?query>`. */
  #redirect(req: IncomingMessage, res: ServerResponse, path: string): void {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    // Collapse leading slashes: `//evil.example/` would be a scheme-relative off-site redirect.
    const location = `${path.replace(/^\/+/, '/')}/${q < 0 ? '' : url.slice(q)}`;
    sendText(res, 301, 'Moved Permanently', { Location: location });
  }

  async #sendFile(req: IncomingMessage, res: ServerResponse, fh: FileHandle, stat: Stats, name: string): Promise<void> {
    let owned = true;
    try {
      const size = stat.size;
      const mtimeSec = Math.floor(stat.mtimeMs / 1000);
      const etag = `"${Math.floor(stat.mtimeMs).toString(16)}-${size.toString(16)}"`;
      const lastModified = new Date(mtimeSec * 1000).toUTCString();
      const verdict = conditional(req, etag, mtimeSec);
      if (verdict === 412) {
        sendText(res, 412, 'Precondition Failed');
        return;
      }
      if (verdict === 304) {
        res.writeHead(304, { ETag: etag, 'Last-Modified': lastModified });
        res.end();
        return;
      }
      res.writeHead(200, {
        'Content-Type': this.#contentType(name),
        'Content-Length': String(size),
        'Last-Modified': lastModified,
        ETag: etag,
      });
      if (req.method === 'HEAD' || size === 0) {
        res.end();
        return;
      }
      // `end` caps the bytes at the stat'ed size, so a growing file cannot overrun Content-Length.
      const stream = fh.createReadStream({ start: 0, end: size - 1 });
      owned = false; // the stream closes the handle on end, error or destroy
      try {
        await pipeline(stream, res);
      } catch {
        // Client abort or read error: pipeline already destroyed the file stream. Wait for
        // its 'close' (the FileHandle is closed by then) so a resolved serve() holds no fd.
        res.destroy();
        if (!stream.closed) await once(stream, 'close');
        return;
      }
      // A file that shrank under us left the body short: the framing is broken, so close.
      if (stream.bytesRead < size) res.destroy();
    } finally {
      if (owned) await fh.close().catch(() => undefined);
    }
  }

  #contentType(name: string): string {
    const ext = extname(name).toLowerCase();
    if (ext === '') return this.#defaultCtype;
    return this.#overrides.get(ext) ?? (lookupMime(ext) || this.#defaultCtype);
  }
}

/** The entity-tags of an If-Match / If-None-Match list (commas may sit inside quotes). */
function entityTags(header: string): string[] {
  return header.match(ETAG_LIST) ?? [];
}

/**
 * RFC 9110 §13.2.2 evaluation order (Mongrel2 checks the same four headers, §7): If-Match,
 * else If-Unmodified-Since → 412; If-None-Match, else If-Modified-Since → 304. Dates that do
 * not parse are ignored, as the RFC requires.
 */
function conditional(req: IncomingMessage, etag: string, mtimeSec: number): 200 | 304 | 412 {
  const h = req.headers;
  const ifMatch = h['if-match'];
  if (ifMatch !== undefined) {
    // Strong comparison: a weak tag never satisfies If-Match.
    if (ifMatch.trim() !== '*' && !entityTags(ifMatch).includes(etag)) return 412;
  } else if (h['if-unmodified-since'] !== undefined) {
    const t = Date.parse(h['if-unmodified-since']);
    if (!Number.isNaN(t) && mtimeSec > Math.floor(t / 1000)) return 412;
  }
  const ifNoneMatch = h['if-none-match'];
  if (ifNoneMatch !== undefined) {
    // Weak comparison: `W/"x"` matches `"x"`.
    if (ifNoneMatch.trim() === '*') return 304;
    const tags = entityTags(ifNoneMatch).map((t) => (t.startsWith('W/') ? t.slice(2) : t));
    return tags.includes(etag) ? 304 : 200;
  }
  if (h['if-modified-since'] !== undefined) {
    const t = Date.parse(h['if-modified-since']);
    if (!Number.isNaN(t) && mtimeSec <= Math.floor(t / 1000)) return 304;
  }
  return 200;
}
