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
 *   §13.2.2 (gateway/conditional.ts).
 * - 304 carries no `Content-Length` (Mongrel2 sends `Content-Length: 0`, which RFC 9110 §8.6
 *   forbids unless it equals the 200 length).
 * - Invalid percent-encoding, overlong UTF-8, NUL, encoded `/` or `\` inside a segment, FIFOs,
 *   devices and unreadable files all answer 404 `Not Found` (§9 body), never 400/403/500, so
 *   probing learns nothing about what exists outside the base.
 * - `cache_ttl` (§7) keeps a bounded cache of file records (see "File-record cache" below), but
 *   `Date` is always fresh (Node's), where Mongrel2 caches the whole header block with it.
 * - Content types come from the `mime-types` package (e.g. `.js` → `text/javascript`, where
 *   Mongrel2's table says `application/x-javascript`); config `mimetypes` override it.
 * - Hidden files (`.name`) are served, as Mongrel2 does: the base is the publishing boundary.
 * - `Range` is ignored (full 200), as in Mongrel2.
 *
 * File-record cache (`cache_ttl`, §7): a record holds the normalised relative path it answers
 * for (the decoded, checked segments joined with `/`, never raw request bytes), the real path
 * that passed the containment check when it was made, the file's identity and version
 * (dev, ino, size, mtime, ctime), the response header values and, for files up to
 * SMALL_FILE, the body. Within `cache_ttl` seconds of its last check a record is used without
 * touching the file system. With `cache_ttl = 0` (the default), and after the TTL, a use is
 * preceded by an `lstat` of the real path that must match the record exactly, otherwise the
 * record is dropped and the request takes the full path (realpath, containment, open, fstat).
 * Not-found answers, directories and anything that is not a regular file are never cached.
 * A body is only kept when it was read after the file's mtime and ctime were old enough
 * (`settled`) that any later write must move one of them: a write within the file system's
 * timestamp granularity could otherwise change the bytes without changing the stat (the ETag
 * has the same limit); until then the record's file is read afresh each time. Bounded by
 * entries and bytes; eviction is second-chance (approximately least recently used).
 *
 * Revalidation is one synchronous `lstatSync` per record per event-loop turn, taken when the
 * turn's first request for it is handled; the turn's other requests for it share the result
 * (their bytes were in already when the turn began, except pipelined ones that came in during
 * it). Measured with bench/ (1 KiB file, one pinned core, 50 connections): an asynchronous
 * lstat, even one shared per turn, costs a thread-pool round trip per turn that leaves the
 * loop idle: 0.69x node:http's req/s, p99 14 ms; synchronous: 0.87x, p99 3.5 ms, as fast as
 * `cache_ttl = 60`. The price, as in Mongrel2 and nginx's open_file_cache: a file system that
 * hangs (a hard NFS mount whose server is gone) blocks the event loop, i.e. every route of the
 * gateway, at the first revalidation, where the asynchronous lookup only stalls Dir requests
 * (and the thread pool). The uncached path stays asynchronous.
 *
 * Residual race (documented, not fixable portably): a local user who can write inside the base
 * could swap a directory for a symlink between `realpath` and `open`. The final component is
 * opened with O_NOFOLLOW, which narrows the window to intermediate directories. A cached
 * record does not widen it: it is only ever served for the exact file (dev, ino) that passed
 * the containment check, unchanged since (size, mtime, ctime); a body-less record reopens its
 * real path and compares the opened file's fstat before sending a byte. What a record can do
 * is keep serving that unchanged file after someone with write access in the base *moved* it
 * out (by renaming a parent directory and leaving a symlink), until it changes, its record
 * is evicted, or (with `cache_ttl > 0`) the TTL runs out. With `cache_ttl > 0`, a deleted or
 * unpublished file also stays served from memory until its record's TTL runs out — that is
 * what the setting asks for. On NFS, lstat may answer from the client's attribute cache
 * (`actimeo`), so with `cache_ttl = 0` a change can take that long to show (the full lookup
 * revalidates on open: close-to-open). The base's real path is resolved once (again only
 * after a failed resolution), so retargeting a symlinked base (`current -> release-2`) is not
 * noticed while the old target still resolves; restart the gateway after such a deploy.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { constants as FS, lstatSync, type Stats } from 'node:fs';
import { open, realpath, type FileHandle } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { lookup as lookupMime } from 'mime-types';
import type { ConfigDir } from '../protocol/mongrel2-conf.js';
import type { RouteHit, RouteTarget } from './route-target.js';
import { sendShortAnswer } from './short-answer.js';
import { evaluateConditionals } from './conditional.js';
import { RecordCache, sameFile, settled, type DirCacheLimits, type FileRecord } from './file-cache.js';

export type { DirCacheLimits } from './file-cache.js';

export interface DirTargetOptions {
  /** Dir `base` is relative to this, like Mongrel2's working directory / chroot (§12.3). */
  cwd: string;
  /** `'.ext' -> type` overrides from mongrel2.conf `mimetypes` (a key without a dot gets one). */
  mimetypes?: Record<string, string>;
  /** Bounds of the file-record cache; see DirCacheLimits for the defaults. */
  cache?: DirCacheLimits;
  /**
   * Wall clock in milliseconds (default `Date.now`): ages records for `cache_ttl` and tells
   * whether a file's timestamps are old enough to cache its bytes. For tests.
   */
  now?: () => number;
}

/** Bounds of one DirTarget's file-record cache. */
/** Counters of one DirTarget's file-record cache (a snapshot). */
export interface DirCacheStats {
  /** Records held now, and the bytes they are accounted at. */
  entries: number;
  bytes: number;
  /** Requests answered from a record (within the TTL or after a matching lstat). */
  hits: number;
  /** Revalidation lstat calls issued (one may serve several requests). */
  revalidations: number;
  /** Full lookups: realpath, containment, open, fstat. */
  lookups: number;
  /** Records dropped to stay within the bounds. */
  evictions: number;
}

// Failures that mean "no such servable file": answered 404 like a missing file (§7, §9).
// EACCES/EPERM included on purpose: a 403 would confirm the file exists.
const NOT_FOUND_CODES = new Set(['ENOENT', 'ENOTDIR', 'ELOOP', 'ENAMETOOLONG', 'EACCES', 'EPERM']);
// O_NONBLOCK: opening a FIFO must not block a libuv thread forever (it is then refused as not
// a regular file). O_NOFOLLOW: the final component must not be a symlink swapped in after
// realpath. Both are 0 where the platform lacks them.
const OPEN_FLAGS = FS.O_RDONLY | (FS.O_NOFOLLOW ?? 0) | (FS.O_NONBLOCK ?? 0);
/** Files up to this size are read whole and sent with one `res.end(buffer)`. */
const SMALL_FILE = 64 * 1024;
/** Bytes a record is accounted at besides its body (paths, strings, the object itself). */
const RECORD_OVERHEAD = 512;
/** Read size when streaming larger files (also the most held per response beyond the socket's buffer). */
const CHUNK = 64 * 1024;

/**
 * Decodes the path below the route prefix into plain file-name segments, or undefined (→ 404)
 * when any segment is unsafe. Splitting happens *before* decoding, so `%2f` can never become a
 * separator; a decoded `/`, `\` or NUL inside a segment is refused rather than kept literally.
 */
function safeSegments(rel: string): string[] | undefined {
  const out: string[] = [];
  for (const raw of rel.split('/')) {
    let seg = raw;
    // Without a `%` decoding is the identity, so only segments with one pay for it.
    if (raw.includes('%')) {
      try {
        // Throws URIError on bad escapes and on overlong/invalid UTF-8 (`%c0%ae`, `%e0%80%ae`).
        seg = decodeURIComponent(raw);
      } catch {
        return undefined;
      }
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

const SERVED: Promise<void> = Promise.resolve();

/** Anything unexpected: 500 if we still can, else cut the connection (cannot reframe). */
function fail(res: ServerResponse): void {
  try {
    sendShortAnswer(res, 500, 'Internal Server Error', { close: true });
  } catch {
    res.destroy();
  }
}

/**
 * Reads up to `size` bytes from the start of `fh`. Capped at `size`, so a file that grows
 * cannot overrun the stat'ed length; shorter when it shrank (the result is then a view).
 */
async function readAll(fh: FileHandle, size: number): Promise<Buffer> {
  // Not from Buffer's shared pool: a cached body must not pin an 8 KiB slab it does not count.
  const buf = Buffer.allocUnsafeSlow(size);
  let got = 0;
  while (got < size) {
    const { bytesRead } = await fh.read(buf, got, size - got, got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === size ? buf : buf.subarray(0, got);
}

/** A flat [name, value, ...] header list as an object. */
function headObject(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}

/** Resolves when `res` can take more ('drain') or is gone ('close'); true if it is gone. */
function drainOrClose(res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const onDrain = (): void => {
      res.off('close', onClose);
      resolve(false);
    };
    const onClose = (): void => {
      res.off('drain', onDrain);
      resolve(true);
    };
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}

/**
 * Writes `size` bytes of `fh` to `res` (head already sent) in CHUNK reads with backpressure.
 * A plain read/write loop instead of a read stream + stream.pipeline: no AbortController per
 * request, and the caller keeps the handle, so it is closed (in its `finally`) by the time
 * serve() settles, whether the client read everything, went away, or the read failed.
 * Reads stop at `size`, so a growing file cannot overrun Content-Length; a file that shrank
 * leaves the body short, which breaks the framing, so the connection is destroyed.
 */
async function streamFile(fh: FileHandle, size: number, res: ServerResponse): Promise<void> {
  let pos = 0;
  try {
    while (pos < size) {
      if (res.destroyed) return;
      const want = Math.min(CHUNK, size - pos);
      const { bytesRead, buffer } = await fh.read(Buffer.allocUnsafe(want), 0, want, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      if (res.destroyed) return;
      if (!res.write(bytesRead === want ? buffer : buffer.subarray(0, bytesRead)) && (await drainOrClose(res))) return;
    }
  } catch {
    // Read error mid-body: the head is gone, so the only honest signal left is a cut.
    res.destroy();
    return;
  }
  if (pos < size) res.destroy();
  else res.end();
}

/** An open file and the clock reading taken just before its fstat. */
interface Opened {
  fh: FileHandle;
  statAt: number;
}

/** A static-file target for one `Dir(...)` config entry. */
export class DirTarget implements RouteTarget {
  readonly kind = 'dir';
  readonly #base: string;
  readonly #indexFile: string;
  readonly #defaultCtype: string;
  readonly #overrides = new Map<string, string>();
  /** The base's real path, resolved on first use; dropped when resolving fails (base absent). */
  #baseReal: Promise<string> | undefined;
  readonly #cache: RecordCache;
  /** `cache_ttl` in ms: how long a record is used without an lstat (0: lstat every use). */
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #counters = { hits: 0, revalidations: 0, lookups: 0 };
  /** Event-loop turns, counted only while records are being revalidated (#usable). */
  #turn = 0;
  #turnEnding = false;

  /**
   * Does no I/O: the base may appear after construction. Never throws. A `cacheTtl` that is
   * not a positive number counts as 0; `options.cache` defaults to 1,000 records / 32 MiB.
   */
  constructor(config: ConfigDir, options: DirTargetOptions) {
    this.#base = resolve(options.cwd, config.base);
    this.#indexFile = config.indexFile;
    this.#defaultCtype = config.defaultCtype;
    for (const [ext, type] of Object.entries(options.mimetypes ?? {})) {
      this.#overrides.set((ext.startsWith('.') ? ext : `.${ext}`).toLowerCase(), type);
    }
    this.#cache = new RecordCache(options.cache ?? {});
    this.#ttlMs = Number.isFinite(config.cacheTtl) && config.cacheTtl > 0 ? config.cacheTtl * 1000 : 0;
    this.#now = options.now ?? Date.now;
  }

  /** A snapshot of the file-record cache's counters. */
  get cacheStats(): DirCacheStats {
    return { entries: this.#cache.size, bytes: this.#cache.bytes, evictions: this.#cache.evictions, ...this.#counters };
  }

  /**
   * Serve `req`. `hit.prefix` is the matched route prefix (e.g. `/static/`), `hit.path` the raw
   * request path without the query. Always ends (or destroys) the response; never throws or rejects.
   */
  serve(req: IncomingMessage, res: ServerResponse, hit: Pick<RouteHit, 'prefix' | 'path'>): Promise<void> {
    const { prefix, path } = hit;
    try {
      // Answers from memory complete synchronously: no promise of their own (the hot path).
      return this.#serve(req, res, prefix, path)?.catch(() => fail(res)) ?? SERVED;
    } catch {
      fail(res);
      return SERVED;
    }
  }

  /** Answers what needs no I/O and returns undefined; otherwise the promise of the rest. */
  #serve(req: IncomingMessage, res: ServerResponse, prefix: string, path: string): Promise<void> | undefined {
    const method = req.method ?? '';
    if (method !== 'GET' && method !== 'HEAD') {
      // §7: only GET and HEAD; Mongrel2 also closes (the request may carry an unread body).
      sendShortAnswer(res, 405, 'Method Not Allowed', { headers: { Allow: 'GET, HEAD' }, close: true });
      return;
    }
    // §7: the prefix-longer-than-path case (route-table quirk `/us` → `/users`) is a 404.
    const segments = path.startsWith(prefix) ? safeSegments(path.slice(prefix.length)) : undefined;
    if (segments === undefined) {
      sendShortAnswer(res, 404, 'Not Found');
      return;
    }
    const wantsIndex = path.endsWith('/');
    if (wantsIndex) segments.push(this.#indexFile);

    // Keyed by the checked segments, so `%61.txt` and `a.txt` share a record and no raw
    // spelling can alias another file (segments hold no `/`, so the join is unambiguous).
    const key = segments.join('/');
    const cached = this.#cache.get(key);
    if (cached !== undefined && this.#usable(cached)) {
      this.#counters.hits++;
      if (this.#answerFromRecord(req, res, cached)) return;
      // Unsent: the file behind a body-less record was not the recorded one when reopened.
      return this.#sendRecord(req, res, cached, undefined).then((sent) => (sent ? undefined : this.#lookup(req, res, path, segments, wantsIndex, key)));
    }
    // No record, or a stale one (#usable dropped it): the full lookup.
    return this.#lookup(req, res, path, segments, wantsIndex, key);
  }

  /** The full lookup (§7): realpath, containment, open, fstat; makes a record for a regular file. */
  async #lookup(req: IncomingMessage, res: ServerResponse, path: string, segments: string[], wantsIndex: boolean, key: string): Promise<void> {
    this.#counters.lookups++;
    let fh: FileHandle | undefined;
    try {
      const baseReal = await this.#resolveBase();
      // §7: realpath, then require the result inside the base; the separator stops `www-secret`.
      const real = await realpath(join(baseReal, ...segments));
      if (!isInside(real, baseReal)) {
        sendShortAnswer(res, 404, 'Not Found');
        return;
      }
      fh = await open(real, OPEN_FLAGS);
      const statAt = this.#now();
      const stat = await fh.stat();
      if (stat.isDirectory() && !wantsIndex) {
        await fh.close();
        fh = undefined;
        this.#redirect(req, res, path);
        return;
      }
      if (!stat.isFile()) {
        sendShortAnswer(res, 404, 'Not Found');
        return;
      }
      const rec = this.#record(key, real, stat, segments[segments.length - 1] ?? '', statAt);
      this.#cache.set(rec);
      const handle = fh;
      fh = undefined; // ownership moves to #sendRecord
      await this.#sendRecord(req, res, rec, { fh: handle, statAt });
    } catch (err) {
      const code = errCode(err);
      if (code !== undefined && NOT_FOUND_CODES.has(code)) sendShortAnswer(res, 404, 'Not Found');
      else throw err;
    } finally {
      if (fh !== undefined) await fh.close().catch(() => undefined);
    }
  }

  #record(key: string, real: string, stat: Stats, name: string, checkedAt: number): FileRecord {
    const mtimeSec = Math.floor(stat.mtimeMs / 1000);
    const etag = `"${Math.floor(stat.mtimeMs).toString(16)}-${stat.size.toString(16)}"`;
    const lastModified = new Date(mtimeSec * 1000).toUTCString();
    return {
      key,
      real,
      dev: stat.dev,
      ino: stat.ino,
      size: stat.size,
      mtimeMs: stat.mtimeMs,
      ctimeMs: stat.ctimeMs,
      etag,
      lastModified,
      mtimeSec,
      head: ['Content-Type', this.#contentType(name), 'Content-Length', String(stat.size), 'Last-Modified', lastModified, 'ETag', etag],
      body: undefined,
      bytes: RECORD_OVERHEAD + 2 * (key.length + real.length),
      used: false,
      checkedAt,
      verifiedTurn: -1,
    };
  }

  /**
   * Whether `rec` may answer now (§7 `cache_ttl`): within the TTL of its last check, yes;
   * otherwise one lstat of its real path must match it. A mismatch or error drops the record.
   */
  #usable(rec: FileRecord): boolean {
    if (this.#ttlMs > 0) {
      // A clock that went backwards (negative age) expires the record rather than extend it.
      const age = this.#now() - rec.checkedAt;
      if (age >= 0 && age < this.#ttlMs) return true;
    }
    // One lstat per record per event-loop turn, synchronous: see "Revalidation" in the header.
    if (rec.verifiedTurn === this.#turn) return true;
    const checkedAt = this.#now();
    this.#counters.revalidations++;
    let st: Stats | undefined;
    try {
      // lstat: the real path has no symlinks, so one appearing anywhere means a change (in
      // the final component as another type, in a directory above as another file).
      st = lstatSync(rec.real, { throwIfNoEntry: false });
    } catch {
      st = undefined; // ENOTDIR, ELOOP, EACCES, …: whatever it is now, not the recorded file
    }
    if (st === undefined || !sameFile(rec, st)) {
      this.#cache.delete(rec);
      return false;
    }
    rec.checkedAt = checkedAt;
    rec.verifiedTurn = this.#turn;
    if (!this.#turnEnding) {
      this.#turnEnding = true;
      // Runs after this turn's I/O callbacks: requests of the next turn check again.
      setImmediate(() => {
        this.#turn++;
        this.#turnEnding = false;
      });
    }
    return true;
  }

  /**
   * Answers from `rec`: 412/304 from its validators, HEAD from its head, GET from its body,
   * else from `opened` (the lookup's open file, fstat'ed at `statAt`) or by reopening its real
   * path. Closes the handle. Resolves false, having sent nothing, when a reopened file is not
   * the recorded one (the record is dropped; the caller looks the path up afresh).
   */
  async #sendRecord(req: IncomingMessage, res: ServerResponse, rec: FileRecord, opened: Opened | undefined): Promise<boolean> {
    let fh = opened?.fh;
    try {
      if (this.#answerFromRecord(req, res, rec)) return true;
      if (opened === undefined) {
        opened = await this.#reopen(rec);
        if (opened === undefined) return false;
        fh = opened.fh;
      }
      if (rec.size <= SMALL_FILE) {
        // One read, then head and body in one write: no stream, no per-request AbortController.
        const body = await readAll(opened.fh, rec.size);
        if (body.length === rec.size) {
          if (settled(rec, opened.statAt)) this.#cache.attachBody(rec, body);
          res.writeHead(200, rec.head);
        } else {
          // Shrank under us: read before the head, so Content-Length can still tell the truth.
          res.writeHead(200, { ...headObject(rec.head), 'Content-Length': String(body.length) });
        }
        res.end(body);
        return true;
      }
      res.writeHead(200, rec.head);
      await streamFile(opened.fh, rec.size, res);
      return true;
    } finally {
      if (fh !== undefined) await fh.close().catch(() => undefined);
    }
  }

  /**
   * Answers what `rec` alone can answer — 412/304 from its validators, HEAD from its head, GET
   * from its body — and says so; false (nothing sent) when the bytes must be read.
   */
  #answerFromRecord(req: IncomingMessage, res: ServerResponse, rec: FileRecord): boolean {
    const verdict = evaluateConditionals(req.headers, rec.etag, rec.mtimeSec);
    if (verdict === 412) {
      sendShortAnswer(res, 412, 'Precondition Failed');
      return true;
    }
    if (verdict === 304) {
      res.writeHead(304, { ETag: rec.etag, 'Last-Modified': rec.lastModified });
      res.end();
      return true;
    }
    if (req.method === 'HEAD' || rec.size === 0) {
      res.writeHead(200, rec.head);
      res.end();
      return true;
    }
    if (rec.body === undefined) return false;
    res.writeHead(200, rec.head);
    res.end(rec.body);
    return true;
  }

  /**
   * Opens a record's real path again (O_NOFOLLOW) and keeps the handle only if fstat shows the
   * recorded file, unchanged: whatever happened to the path since, only bytes of the file
   * that passed the containment check are sent. Otherwise drops the record → undefined.
   */
  async #reopen(rec: FileRecord): Promise<Opened | undefined> {
    let fh: FileHandle | undefined;
    try {
      fh = await open(rec.real, OPEN_FLAGS);
      const statAt = this.#now();
      if (sameFile(rec, await fh.stat())) {
        const ok = { fh, statAt };
        fh = undefined;
        return ok;
      }
    } catch (err) {
      const code = errCode(err);
      if (code === undefined || !NOT_FOUND_CODES.has(code)) throw err;
    } finally {
      if (fh !== undefined) await fh.close().catch(() => undefined);
    }
    this.#cache.delete(rec);
    return undefined;
  }

  /**
   * The base's real path, resolved once and shared: resolving it on every request cost a
   * realpath per request. A failure is not cached, so a base created later is found.
   */
  #resolveBase(): Promise<string> {
    let p = this.#baseReal;
    if (p === undefined) {
      p = realpath(this.#base);
      this.#baseReal = p;
      p.catch(() => {
        if (this.#baseReal === p) this.#baseReal = undefined;
      });
    }
    return p;
  }

  /** §7 directory without trailing slash → 301, but to a sane relative `<path>/<?query>`. */
  #redirect(req: IncomingMessage, res: ServerResponse, path: string): void {
    const url = req.url ?? '';
    const q = url.indexOf('?');
    // Collapse leading slashes: `//evil.example/` would be a scheme-relative off-site redirect.
    const location = `${path.replace(/^\/+/, '/')}/${q < 0 ? '' : url.slice(q)}`;
    sendShortAnswer(res, 301, 'Moved Permanently', { headers: { Location: location } });
  }

  #contentType(name: string): string {
    const ext = extname(name).toLowerCase();
    if (ext === '') return this.#defaultCtype;
    return this.#overrides.get(ext) ?? (lookupMime(ext) || this.#defaultCtype);
  }
}
