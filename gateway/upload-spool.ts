/**
 * The gateway's upload store: Mongrel2's async uploads (mongrel2-protocol.md §3.4) done by the
 * gateway. A body over `limits.content_length` (or any chunked body) is written to a temp file
 * made from `upload.temp_store` (a mkstemp template ending in `XXXXXX`, relative to the
 * config's folder as Mongrel2's is to its working directory), announced to the handler with
 * `x-mongrel2-upload-start` as soon as the head is read and with `x-mongrel2-upload-done` once
 * the last byte is written. The handler reads the file and deletes it, as it does behind
 * Mongrel2 (which never removes a completed upload).
 *
 * `limits.upload_max` (bytes, default 1 GiB) is m2gate's own: Mongrel2 has no bound on what
 * it spools. A declared length over it gets 413 before anything is written; a chunked body
 * that grows past it loses its partial file and the handler gets a disconnect notice.
 */
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { mkdirSync } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';
import type { HeaderEncoding, HeaderMap } from '../protocol/m2-request.js';
import type { Mongrel2Config } from '../protocol/mongrel2-conf.js';

export const UPLOAD_START = 'x-mongrel2-upload-start';
export const UPLOAD_DONE = 'x-mongrel2-upload-done';

/** `limits.upload_max` when the config does not set it. */
export const DEFAULT_UPLOAD_MAX = 1024 * 1024 * 1024;

const TEMPLATE_SUFFIX = 'XXXXXX';
// glibc's mkstemp alphabet; the handler sees these names, so they look like Mongrel2's.
const NAME_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const CREATE_TRIES = 100;

export interface UploadStoreConfig {
  /** `upload.temp_store` as written in the config: what the handler sees, Xs replaced. */
  template: string;
  /** The folder relative templates resolve against (the gateway's `cwd`). */
  cwd: string;
  /** `upload.temp_store_mode` (default 0600). */
  mode: number;
  /** `limits.upload_max`: the largest body spooled. */
  maxBytes: number;
}

/** A temp file just created: `announced` goes in the headers, `file` is where it is. */
export interface SpoolFile {
  announced: string;
  file: string;
  handle: FileHandle;
}

/**
 * Reads the upload settings of a config; undefined when `upload.temp_store` is not set (then
 * bodies over the limit get 413, as Mongrel2 answers without a store, §3.3).
 *
 * @throws M2gateError (M2G_ERR_CONFIG) for a template not ending in XXXXXX, a mode that is not
 *   an octal number, or a non-positive `limits.upload_max`.
 */
export function uploadStoreConfig(config: Mongrel2Config, cwd: string): UploadStoreConfig | undefined {
  const template = config.settings['upload.temp_store'];
  if (template === undefined || template === '') return undefined;
  if (!template.endsWith(TEMPLATE_SUFFIX)) {
    throw new M2gateError(ERROR_CODES.CONFIG, `upload.temp_store must be a mkstemp template ending in XXXXXX (got '${template}')`);
  }
  const modeText = config.settings['upload.temp_store_mode'] ?? '0600';
  if (!/^[0-7]{1,4}$/.test(modeText)) throw new M2gateError(ERROR_CODES.CONFIG, `upload.temp_store_mode must be an octal file mode such as 0600 (got '${modeText}')`);
  const maxBytes = Object.hasOwn(config.settings, 'limits.upload_max') ? Number(/^\s*(\d+)/.exec(config.settings['limits.upload_max']!)?.[1] ?? 0) : DEFAULT_UPLOAD_MAX;
  if (!(maxBytes > 0)) throw new M2gateError(ERROR_CODES.CONFIG, 'limits.upload_max must be a positive number of bytes');
  return { template, cwd, mode: Number.parseInt(modeText, 8), maxBytes };
}

/** Where uploads go, and the temp files made there. */
export class UploadStore {
  readonly config: UploadStoreConfig;
  /** The folder the files are made in, absolute. */
  readonly dir: string;
  #usable = true;

  constructor(config: UploadStoreConfig) {
    this.config = config;
    const t = config.template;
    this.dir = dirname(isAbsolute(t) ? t : join(config.cwd, t));
  }

  /** The template as an absolute path: what a service on this host is given (--upload-store). */
  get absoluteTemplate(): string {
    return join(this.dir, basename(this.config.template));
  }

  /** Largest body spooled: `limits.upload_max`. */
  get maxBytes(): number {
    return this.config.maxBytes;
  }

  /** False once prepare() found the folder impossible to make: then bodies over the limit get 413, as without a store. */
  get usable(): boolean {
    return this.#usable;
  }

  /**
   * Makes the store's folder (0700) if it is missing: Mongrel2 needs it made beforehand, the
   * gateway makes it so that `npm start` works from a fresh clone. One that cannot be made
   * (the shipped config in a read-only install) is a warning, not a failure to start.
   */
  prepare(log: Logger): void {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      this.#usable = false;
      log.warn({ code: ERROR_CODES.CONFIG, dir: this.dir, err: (err as Error).message }, 'upload.temp_store: cannot make its folder; bodies over limits.content_length get 413');
    }
  }

  /**
   * Creates a new empty temp file, exclusively and with the configured mode (chmod after the
   * open, so the umask does not change it). Written by hand: node has mkdtemp for folders
   * only, and the name must follow the configured template.
   */
  async create(): Promise<SpoolFile> {
    const stem = this.config.template.slice(0, -TEMPLATE_SUFFIX.length);
    for (let attempt = 0; ; attempt++) {
      let suffix = '';
      for (let i = 0; i < TEMPLATE_SUFFIX.length; i++) suffix += NAME_CHARS[randomInt(NAME_CHARS.length)];
      const announced = stem + suffix;
      const file = join(this.dir, basename(announced));
      try {
        const handle = await open(file, 'wx', this.config.mode);
        await handle.chmod(this.config.mode);
        return { announced, file, handle };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= CREATE_TRIES) throw err;
      }
    }
  }
}

/** Removes a partial or abandoned upload; a file already gone is fine. */
export async function removeSpoolFile(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/**
 * The header map of an upload message: `headers` (buildHeaders' output) with
 * `x-mongrel2-upload-start`, and on the second message `x-mongrel2-upload-done`, both `path`.
 * The keys sit where Mongrel2 1.12.2 puts them (fixtures req-upload-start/done): json
 * `PATH, x-forwarded-for, [done], client headers, [start], METHOD…`; tnetstring
 * `…PATH, [start], client headers, [done], x-forwarded-for`.
 */
export function uploadHeaders(headers: HeaderMap, encoding: HeaderEncoding, path: string, done: boolean): HeaderMap {
  const out: HeaderMap = {};
  const keys = Object.keys(headers);
  for (const key of keys) {
    if (encoding === 'json') {
      if (key === 'METHOD') out[UPLOAD_START] = path;
      out[key] = headers[key]!;
      if (key === 'x-forwarded-for' && done) out[UPLOAD_DONE] = path;
    } else {
      if (key === 'x-forwarded-for' && done) out[UPLOAD_DONE] = path;
      out[key] = headers[key]!;
      if (key === 'PATH') out[UPLOAD_START] = path;
    }
  }
  return out;
}
