/**
 * The Dir target's file-record cache: what a file answers with, kept by its
 * normalised, checked path and bounded by entries and bytes (see "File-record
 * cache" in dir-target.ts for when a record may be used).
 */
import type { Stats } from 'node:fs';

export interface DirCacheLimits {
  /** Most records kept (default 1,000); 0 disables the cache. */
  maxEntries?: number;
  /** Most bytes kept: bodies plus a fixed overhead per record (default 32 MiB). */
  maxBytes?: number;
}

/**
 * Whether bytes read after a stat taken at `statAt` (wall-clock ms) may be cached against that
 * stat: only when a later write could not get the same mtime and ctime, i.e. both are older
 * than the file system's timestamp granularity. A time on a whole second may come from a file
 * system that keeps only seconds (FAT: two), so 2 s; one with a fraction comes from a
 * fine-grained one, where the kernel's coarse clock ticks in at most 10 ms, so 100 ms is ample.
 */
export function settled(rec: { mtimeMs: number; ctimeMs: number }, statAt: number): boolean {
  const latest = Math.max(rec.mtimeMs, rec.ctimeMs);
  return statAt - latest >= (latest % 1000 === 0 ? 2000 : 100);
}

/** What a cached file answers with; see "File-record cache" in the header. */
export interface FileRecord {
  /** The normalised, checked relative path (decoded segments joined with `/`). */
  readonly key: string;
  /** Real path that passed the containment check when the record was made. */
  readonly real: string;
  readonly dev: number;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
  readonly ctimeMs: number;
  readonly etag: string;
  readonly lastModified: string;
  readonly mtimeSec: number;
  /** The 200 head as a flat [name, value, ...] list, for writeHead. */
  readonly head: string[];
  /** The whole file, for files up to SMALL_FILE once one GET has read them. */
  body: Buffer | undefined;
  /** Bytes this record is accounted at in the cache. */
  bytes: number;
  /** Used since the eviction scan last passed it (second chance). */
  used: boolean;
  /** Clock reading just before the file was last seen to match (for `cache_ttl`). */
  checkedAt: number;
  /** The event-loop turn in which an lstat last matched (see DirTarget#usable). */
  verifiedTurn: number;
}

/** Same file, same version: identity (dev, ino) and what a write, chmod or rename changes. */
export function sameFile(rec: FileRecord, st: Stats): boolean {
  return st.isFile() && st.ino === rec.ino && st.dev === rec.dev && st.size === rec.size && st.mtimeMs === rec.mtimeMs && st.ctimeMs === rec.ctimeMs;
}

/** Records by key, oldest first (Map order), bounded by entries and bytes; see #evict. */
export class RecordCache {
  readonly #map = new Map<string, FileRecord>();
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  #bytes = 0;
  evictions = 0;

  constructor(limits: DirCacheLimits) {
    this.#maxEntries = Math.max(0, limits.maxEntries ?? 1000);
    this.#maxBytes = Math.max(0, limits.maxBytes ?? 32 * 1024 * 1024);
  }

  get size(): number {
    return this.#map.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The record for `key`, marked used (a flag, not a reordering: hits stay allocation-free). */
  get(key: string): FileRecord | undefined {
    const rec = this.#map.get(key);
    if (rec !== undefined) rec.used = true;
    return rec;
  }

  /** Adds (or replaces) a record, evicting the least recently used to fit; too big → not kept. */
  set(rec: FileRecord): void {
    const old = this.#map.get(rec.key);
    if (old !== undefined) this.delete(old);
    if (this.#maxEntries === 0 || rec.bytes > this.#maxBytes) return;
    this.#map.set(rec.key, rec);
    this.#bytes += rec.bytes;
    this.#evict(rec);
  }

  /** Gives a kept record its body (the caller checked the size); dropped again if it cannot fit. */
  attachBody(rec: FileRecord, body: Buffer): void {
    if (this.#map.get(rec.key) !== rec || rec.body !== undefined) return;
    if (rec.bytes + body.length > this.#maxBytes) return;
    rec.body = body;
    rec.bytes += body.length;
    this.#bytes += body.length;
    this.#evict(rec);
  }

  /** Removes `rec` if it is still the record for its key. */
  delete(rec: FileRecord): void {
    if (this.#map.get(rec.key) !== rec) return;
    this.#map.delete(rec.key);
    this.#bytes -= rec.bytes;
  }

  /**
   * Drops records other than `keep`, oldest first, until within both bounds; one used since
   * it was last passed over gets a second chance (moved to the back, flag cleared), so the
   * order approximates least recently used. Terminates: each record moves at most once.
   */
  #evict(keep: FileRecord): void {
    for (const rec of this.#map.values()) {
      if (this.#map.size <= this.#maxEntries && this.#bytes <= this.#maxBytes) return;
      if (rec === keep) continue;
      if (rec.used) {
        rec.used = false;
        this.#map.delete(rec.key);
        this.#map.set(rec.key, rec);
        continue;
      }
      this.delete(rec);
      this.evictions++;
    }
  }
}

