// A raw WebSocket client for tests: writes exact handshake and frame bytes (masked with a
// fixed key, so that two fronts get the same bytes) and reads the server's bytes as they
// come, so that what a front writes can be compared byte for byte. Every wait has a deadline.
import { connect, type Socket } from 'node:net';
import { encodeFrame, FrameParser, closePayload, OPCODES } from '../../protocol/ws-frame.js';
import { untilCheck } from './until.js';

export const WS_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
export const WS_MASK = Buffer.from([0x37, 0xfa, 0x21, 0x3d]);

/** The handshake of client-req-ws-handshake.http.bin, for `path`. */
export function handshakeBytes(path: string, extra = ''): Buffer {
  return Buffer.from(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${WS_KEY}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`, 'latin1');
}

/** A masked client frame. */
export function clientFrame(opcode: number, payload: string | Buffer = '', fin = true): Buffer {
  return encodeFrame(opcode, payload, { mask: WS_MASK, fin });
}

export const clientClose = (code = 1000): Buffer => clientFrame(OPCODES.CLOSE, closePayload(code));

export interface ServerFrame {
  first: number;
  payload: Buffer;
}

export class WsTestClient {
  readonly socket: Socket;
  /** Every byte received, in order. */
  all = Buffer.alloc(0);
  #at = 0;
  #ended = false;
  readonly #listeners = new Set<() => void>();
  readonly closed: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => {
      this.all = Buffer.concat([this.all, d]);
      this.#notify();
    });
    socket.on('error', () => {});
    socket.once('end', () => {
      this.#ended = true;
      this.#notify();
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.#ended = true;
        this.#notify();
        resolve();
      }),
    );
  }

  static async open(port: number): Promise<WsTestClient> {
    const socket = connect(port, '127.0.0.1');
    await withDeadline(new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject)), 'connect');
    return new WsTestClient(socket);
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  #notify(): void {
    for (const l of [...this.#listeners]) l();
  }

  #until<T>(check: () => T | undefined, what: string): Promise<T> {
    return withDeadline(untilCheck(this.#listeners, check), what);
  }

  /** The next `n` unread bytes. */
  bytes(n: number): Promise<Buffer> {
    return this.#until(() => {
      if (this.all.length - this.#at >= n) {
        const out = this.all.subarray(this.#at, this.#at + n);
        this.#at += n;
        return out;
      }
      if (this.#ended) throw new Error(`connection ended with ${this.all.length - this.#at} of ${n} bytes: ${JSON.stringify(this.all.subarray(this.#at).toString('latin1'))}`);
      return undefined;
    }, `${n} bytes`);
  }

  /** The unread bytes up to and including the first CRLFCRLF: an HTTP head. */
  head(): Promise<string> {
    return this.#until(() => {
      const end = this.all.indexOf('\r\n\r\n', this.#at, 'latin1');
      if (end >= 0) {
        const out = this.all.toString('latin1', this.#at, end + 4);
        this.#at = end + 4;
        return out;
      }
      if (this.#ended) throw new Error(`connection ended before a head: ${JSON.stringify(this.all.subarray(this.#at).toString('latin1'))}`);
      return undefined;
    }, 'an HTTP head');
  }

  /** The next server frame (unmasked, any opcode). */
  frame(): Promise<ServerFrame> {
    return this.#until(() => {
      let got: ServerFrame | undefined;
      let error: string | undefined;
      const parser = new FrameParser({ onMessage: (first, payload) => (got ??= { first, payload }), onError: (_c, reason) => (error = reason) }, { maxMessageBytes: 1 << 30, requireMask: false });
      // Parse one frame at a time from the unread bytes: find its length first.
      const rest = this.all.subarray(this.#at);
      const len = frameLength(rest);
      if (len !== undefined && rest.length >= len) {
        parser.push(rest.subarray(0, len));
        if (error !== undefined) throw new Error(`bad server frame: ${error}`);
        this.#at += len;
        return got;
      }
      if (this.#ended) throw new Error(`connection ended inside a frame: ${JSON.stringify(rest.toString('latin1'))}`);
      return undefined;
    }, 'a server frame');
  }

  /** Resolves once the server closed the connection; returns the bytes not read yet. */
  async end(): Promise<Buffer> {
    await this.#until(() => (this.#ended ? true : undefined), 'the connection to close');
    return this.all.subarray(this.#at);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** The byte length of the (unmasked or masked) frame at the start of `b`, or undefined if its header is incomplete. */
function frameLength(b: Buffer): number | undefined {
  if (b.length < 2) return undefined;
  const masked = (b[1]! & 0x80) !== 0 ? 4 : 0;
  const len7 = b[1]! & 0x7f;
  if (len7 < 126) return 2 + masked + len7;
  if (len7 === 126) return b.length < 4 ? undefined : 4 + masked + b.readUInt16BE(2);
  return b.length < 10 ? undefined : 10 + masked + Number(b.readBigUInt64BE(2));
}

export function withDeadline<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** The 101 a handler sends for WS_KEY (fixture req-ws-handshake.*). */
export const SWITCHING = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n';
