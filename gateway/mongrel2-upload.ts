/**
 * Async uploads for the gateway behind a real Mongrel2 (mongrel2-adapter.ts): the gateway is
 * then the handler that receives Mongrel2's upload-start and upload-done (§3.4), and Mongrel2's
 * temp file is on this host in the common setup. With the front's `upload.temp_store` given
 * (`--mongrel2-upload-store`, as this process reaches it), the upload-start is noted, and on
 * upload-done the file (checked as a service checks it: workers/upload-body.ts) becomes the
 * request body the bridged connection carries into node:http, read in pieces with
 * backpressure. The gateway's own routes then see an ordinary request whose body is the file;
 * a Handler route of the gateway's own config spools it again if it is over its own limit.
 * Mongrel2's file is removed once read (or when the connection goes), since the handler owns a
 * completed upload.
 *
 * Without the store given the gateway answers upload-start with 413 and the close message,
 * which makes Mongrel2 stop writing and delete its file (§3.4 "Cancelling").
 */
import { createReadStream } from 'node:fs';
import type { Logger } from 'pino';
import type { M2Request } from '../protocol/m2-request.js';
import { intakeUpload, removeUpload, UploadStoreReader } from '../workers/upload-body.js';

/** Where a bridged connection's bytes go: node:http's side of the socket. */
export interface UploadSink {
  readonly destroyed: boolean;
  /** Pushes bytes to node:http; false when it wants no more for now. */
  push(chunk: Buffer): boolean;
  /** Resolves when node:http reads again (or the socket is destroyed). */
  demand(): Promise<void>;
}

export interface UploadBridgeStats {
  uploads: number;
  uploadsRefused: number;
}

export class Mongrel2Uploads {
  readonly #reader: UploadStoreReader;
  readonly #log: Logger;
  readonly #stats: UploadBridgeStats;

  constructor(store: string, log: Logger, stats: UploadBridgeStats) {
    this.#reader = new UploadStoreReader(store);
    this.#log = log;
    this.#stats = stats;
  }

  /**
   * Checks the file an upload-done names. Returns the file, or undefined when it is refused
   * (logged as a service logs it); the caller then answers 400 and closes.
   */
  accept(req: M2Request): { path: string; size: number } | undefined {
    const intake = intakeUpload(this.#reader, req, this.#log);
    if (!intake.ok) {
      this.#stats.uploadsRefused++;
      return undefined;
    }
    this.#stats.uploads++;
    return intake.file;
  }

  /** Streams `head` then the file into `sink`, then removes the file (also when the sink goes first). */
  async pipe(head: Buffer, file: { path: string; size: number }, sink: UploadSink): Promise<void> {
    try {
      if (!sink.push(head)) await sink.demand();
      for await (const chunk of createReadStream(file.path)) {
        if (sink.destroyed) return;
        if (!sink.push(chunk as Buffer)) await sink.demand();
      }
    } catch (err) {
      this.#log.error({ err, file: file.path }, 'reading a Mongrel2 upload failed');
      throw err;
    } finally {
      removeUpload(file, this.#log);
    }
  }
}
