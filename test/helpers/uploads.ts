// Shared by the upload tests (test/upload-*.test.ts): the captured upload request
// (fixtures req-upload-start/done, client-req-upload.http.bin), message alignment for byte
// comparisons, and an awaitable "this file is gone" and "this folder is empty".
import assert from 'node:assert/strict';
import { existsSync, readdirSync, watch } from 'node:fs';
import { dirname } from 'node:path';
import type { HeaderEncoding } from '../../protocol/m2-request.js';
import { fixture } from './fixtures.js';
import type { Received } from './gateway.js';

/** The capture's 1536-byte body: 0x00..0xFF six times. */
export const UPLOAD_BODY = fixture('client-req-upload.http.bin').subarray(-1536);

/**
 * The capture's request head with its headers in the order Mongrel2 1.12.2 lists them in each
 * encoding (its hash order; the gateway keeps arrival order): the only order in which the two
 * fronts' messages can agree byte for byte.
 */
export function uploadHead(encoding: HeaderEncoding, path = '/handler/upload'): string {
  const order = encoding === 'json'
    ? ['Content-Type: application/octet-stream', 'Content-Length: 1536', 'Host: localhost']
    : ['Host: localhost', 'Content-Length: 1536', 'Content-Type: application/octet-stream'];
  return `POST ${path} HTTP/1.1\r\n${order.join('\r\n')}\r\n\r\n`;
}

/** `got.raw` (latin1) with its connection id and upload path replaced by `connId` and `path`. */
export function aligned(got: Received, connId: number, path: string): string {
  const ours = got.msg.headers['x-mongrel2-upload-start'];
  assert.equal(typeof ours, 'string');
  const text = got.raw.toString('latin1');
  const prefix = `${got.msg.sender} ${got.msg.connId} `;
  assert.ok(text.startsWith(prefix));
  return `${got.msg.sender} ${connId} ${text.slice(prefix.length)}`.replaceAll(ours as string, path);
}

/** Resolves once `file` does not exist (fs.watch on its folder, with a deadline). */
export function gone(file: string, ms = 5000): Promise<void> {
  return watchUntil(dirname(file), () => !existsSync(file), () => `${file} still exists after ${ms} ms`, ms);
}

/** Resolves once `dir` is empty (fs.watch, with a deadline). */
export function emptied(dir: string, ms = 5000): Promise<void> {
  return watchUntil(dir, () => readdirSync(dir).length === 0, () => `${dir} still holds ${readdirSync(dir).join(', ')} after ${ms} ms`, ms);
}

/** Checks `done` now and on every change in `dir` until it holds; rejects with `why()` after `ms`. */
async function watchUntil(dir: string, done: () => boolean, why: () => string, ms: number): Promise<void> {
  const watcher = watch(dir);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(why())), ms);
      const check = (): void => {
        if (done()) {
          clearTimeout(timer);
          resolve();
        }
      };
      watcher.on('change', check);
      check();
    });
  } finally {
    watcher.close();
  }
}
