/**
 * The service's side of async uploads (mongrel2-protocol.md §3.4): which temp file an
 * `upload-done` message names, whether the service may read it, and its removal once the
 * request is answered (the handler owns a completed upload; Mongrel2 never removes it).
 *
 * The service is told the front's `upload.temp_store` as it reaches that folder itself
 * (`--upload-store`, an absolute template or one relative to the service's working directory).
 * A message's path is accepted only when it names a file of that template in that folder:
 * - `x-mongrel2-upload-start` and `x-mongrel2-upload-done` are one string each and equal
 *   (through a real Mongrel2 a client may send these headers itself: measured, §3.2);
 * - its file name is the template's with 6 characters of mkstemp's alphabet for the Xs;
 * - it is a plain path (no `.`, `..` or empty segment), and its folder is the store's: the
 *   same absolute folder, or a relative one (the front's own view, e.g. `tmp`) that the
 *   store's folder ends with;
 * - the file is a regular file, not a symbolic link.
 * Anything else is refused (400) and logged, and no file is read or removed.
 */
import { lstatSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve, sep } from 'node:path';
import type { Logger } from 'pino';
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';
import type { M2Request } from '../protocol/m2-request.js';
import { matchMethodRoute, type MethodRoute } from '../protocol/method-router.js';

/** What a route that takes uploads sees as `req.upload`: the temp file, read-only to it. */
export interface UploadedFile {
  /** Absolute path of the temp file holding the whole body. */
  path: string;
  /** Its size in bytes. */
  size: number;
}

/** The verdict on one upload-done message. */
export type UploadIntake = { ok: true; file: UploadedFile } | { ok: false; status: 400 | 413; text: string; reason: string };

const TEMPLATE_SUFFIX = 'XXXXXX';
const UPLOAD_START = 'x-mongrel2-upload-start';
const UPLOAD_DONE = 'x-mongrel2-upload-done';

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class UploadStoreReader {
  /** The store's folder, absolute. */
  readonly dir: string;
  readonly #name: RegExp;

  /** @throws M2gateError (M2G_ERR_OPTION) for a template that does not end in XXXXXX. */
  constructor(template: string) {
    if (!template.endsWith(TEMPLATE_SUFFIX)) throw new M2gateError(ERROR_CODES.OPTION, `the upload store must be a template ending in XXXXXX, as upload.temp_store is (got '${template}')`);
    const absolute = resolve(template);
    this.dir = dirname(absolute);
    this.#name = new RegExp(`^${escapeRegExp(basename(absolute).slice(0, -TEMPLATE_SUFFIX.length))}[A-Za-z0-9]{6}$`);
  }

  /** Checks the file an upload-done message names (see the module comment). */
  check(req: M2Request): UploadIntake {
    const start = req.headers[UPLOAD_START];
    const done = req.headers[UPLOAD_DONE];
    const refuse = (reason: string): UploadIntake => ({ ok: false, status: 400, text: 'Bad Request\n', reason });
    if (typeof start !== 'string' || typeof done !== 'string' || start !== done) return refuse('x-mongrel2-upload-start and -done differ');
    const segments = done.split('/');
    const absolute = isAbsolute(done);
    // Only a plain path: no `.`, `..` or empty segments (a trailing or doubled slash).
    if (segments.slice(absolute ? 1 : 0).some((seg) => seg === '' || seg === '.' || seg === '..')) return refuse('the path is not a plain one (., .. or an empty segment)');
    const name = segments.pop()!;
    if (!this.#name.test(name)) return refuse('the file name is not one of the upload store template');
    const folder = segments.join('/');
    if (absolute) {
      if (resolve(folder) !== this.dir) return refuse('the file is outside the upload store');
    } else if (folder !== '' && this.dir !== resolve(folder) && !this.dir.endsWith(sep + folder.split('/').join(sep))) {
      return refuse('the file is outside the upload store');
    }
    const path = join(this.dir, name);
    try {
      const st = lstatSync(path);
      if (!st.isFile()) return refuse('not a regular file');
      return { ok: true, file: { path, size: st.size } };
    } catch {
      return refuse('no such file in the upload store');
    }
  }
}

/** Removes an answered upload's temp file (a refused one is never touched); one the route moved or removed itself is fine. */
export function removeUpload(upload: UploadIntake | UploadedFile | undefined, log: Logger): void {
  const file = upload === undefined || 'path' in upload ? upload : upload.ok ? upload.file : undefined;
  if (file === undefined) return;
  unlink(file.path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') log.warn({ err: err.message, file: file.path }, 'cannot remove an answered upload');
  });
}

/**
 * Whether an upload-start is answered at once (then closing the connection, which makes the
 * front stop writing and delete its file, §3.4 "Cancelling") rather than at its upload-done:
 * when no store is set, or its route does not exist, has no such method or does not take
 * uploads. Otherwise the service waits for the upload-done.
 */
export function refusedAtStart(reader: UploadStoreReader | undefined, routes: readonly MethodRoute[], takesUploads: readonly boolean[], method: string, path: string): boolean {
  if (reader === undefined) return true;
  const found = matchMethodRoute(routes, method, path);
  return found.index === undefined || takesUploads[found.index] !== true;
}

/** What the service does with an upload-done before routing it: `reader` is undefined without --upload-store. */
export function intakeUpload(reader: UploadStoreReader | undefined, req: M2Request, log: Logger): UploadIntake {
  if (reader === undefined) {
    log.warn({ connId: req.connId, path: req.headers[UPLOAD_DONE] }, 'an upload arrived but no upload store is set (--upload-store): 413, its temp file is left');
    return { ok: false, status: 413, text: 'Request Entity Too Large\n', reason: 'no upload store' };
  }
  const verdict = reader.check(req);
  if (!verdict.ok) {
    const err = new M2gateError(ERROR_CODES.UPLOAD, `upload refused: ${verdict.reason}`);
    log.warn({ code: err.code, err: err.message, connId: req.connId, path: req.headers[UPLOAD_DONE], store: reader.dir }, 'upload refused');
  }
  return verdict;
}
