/**
 * The envelope of the m2gate link (protocol/m2gate-link.md): frames in,
 * commands out, and the frame lists to send. Pure: no sockets.
 */
import { ERROR_CODES, ProtocolError } from './errors.js';

export const LINK_VERSION = 'M2GL1';

export type LinkMessage =
  | { command: 'READY'; credit: number; threads: number; name: string }
  | { command: 'REQUEST'; message: Buffer }
  | { command: 'DISCONNECT'; message: Buffer }
  | { command: 'NOTICE'; message: Buffer }
  | { command: 'FRAME'; message: Buffer }
  | { command: 'REPLY'; credit: number; message: Buffer }
  | { command: 'CREDIT'; credit: number }
  | { command: 'HEARTBEAT' }
  | { command: 'BYE' }
  | { command: 'METRICS'; report: Buffer }
  | { command: 'FEATURES'; features: string[] }
  | { command: 'BATCH'; frames: Buffer[] };

export type LinkCommand = LinkMessage['command'];

// Each message is ONE ZeroMQ frame, "M2GL1 COMMAND [args]" then LF and the
// payload where there is one. A frame per field cost the gateway and the
// service about 20 us more CPU per request than PUSH/SUB on a trivial route
// (measured: every frame is another message part for ZeroMQ to queue, frame
// and signal), so the fields share one frame.
// READY and FEATURES take a variable count (checked in decodeLink).
const ARGS: Record<LinkCommand, number> = { READY: 3, REQUEST: 0, DISCONNECT: 0, NOTICE: 0, FRAME: 0, REPLY: 1, CREDIT: 1, HEARTBEAT: 0, BYE: 0, METRICS: 0, FEATURES: 1, BATCH: 1 };
const PAYLOAD: Record<LinkCommand, boolean> = { READY: false, REQUEST: true, DISCONNECT: true, NOTICE: true, FRAME: true, REPLY: true, CREDIT: false, HEARTBEAT: false, BYE: false, METRICS: true, FEATURES: false, BATCH: true };
/** Commands that only ever go alone: the handshake, and a batch itself. */
const NOT_IN_BATCH: ReadonlySet<LinkCommand> = new Set(['READY', 'FEATURES', 'BATCH']);
/** The features this implementation knows (FEATURES lists the sender's; unknown ones are ignored). */
export const FEATURE_BATCH = 'batch';
const FEATURE_WORD = /^[a-z0-9-]{1,32}$/;
const MAX_NUMBER = 999_999;
/** The longest header line read: version, command, numbers and a service name. */
const MAX_HEADER = 512;
const LF = 0x0a;
const PREFIX = Buffer.from(`${LINK_VERSION} `);

const fail = (message: string, offset = 0): never => {
  throw new ProtocolError(ERROR_CODES.LINK, message, offset);
};

function parseNumber(text: string, what: string): number {
  if (!/^[0-9]{1,6}$/.test(text)) fail(`${what} must be 1 to 6 ASCII digits`);
  return Number(text);
}

/**
 * Reads one link message (the frames without the ROUTER's routing id).
 *
 * @throws ProtocolError M2G_ERR_LINK on another version tag, an unknown
 *   command, a wrong argument count, a malformed number, a missing or
 *   unexpected payload, or more than one frame.
 */
export function decodeLink(frames: readonly Buffer[]): LinkMessage {
  if (frames.length !== 1) fail(`a link message is one frame, got ${frames.length}`);
  const frame = frames[0]!;
  if (frame.length < PREFIX.length || frame.compare(PREFIX, 0, PREFIX.length, 0, PREFIX.length) !== 0) {
    const tag = frame.subarray(0, Math.min(16, frame.indexOf(0x20) < 0 ? frame.length : frame.indexOf(0x20)));
    fail(`not an ${LINK_VERSION} message (version tag '${tag.toString('latin1')}')`);
  }
  const lf = frame.indexOf(LF, PREFIX.length);
  const end = lf < 0 ? frame.length : lf;
  if (end > MAX_HEADER) fail(`header longer than ${MAX_HEADER} bytes`);
  const words = frame.toString('utf8', PREFIX.length, end).split(' ');
  const command = words[0] ?? '';
  if (!Object.hasOwn(ARGS, command)) fail(`unknown command '${command.slice(0, 16)}'`);
  const cmd = command as LinkCommand;
  // READY's name is the rest of the line and may hold spaces.
  const args = cmd === 'READY' ? [words[1] ?? '', words[2] ?? '', words.slice(3).join(' ')] : words.slice(1);
  const argsOk = cmd === 'READY' ? words.length >= 4 : cmd === 'FEATURES' ? args.length >= 1 : args.length === ARGS[cmd];
  if (!argsOk) fail(`${cmd} takes ${cmd === 'FEATURES' ? 'at least ' : ''}${ARGS[cmd]} argument(s), got ${words.length - 1}`);
  if (PAYLOAD[cmd] !== (lf >= 0)) fail(PAYLOAD[cmd] ? `${cmd} needs a payload after a line feed` : `${cmd} takes no payload`, end);
  const payload = (): Buffer => frame.subarray(lf + 1);
  switch (cmd) {
    case 'READY': {
      const credit = parseNumber(args[0]!, 'READY credit');
      const threads = parseNumber(args[1]!, 'READY threads');
      if (credit < 1 || threads < 1) fail('READY credit and threads must be at least 1');
      return { command: cmd, credit, threads, name: args[2]! };
    }
    case 'REQUEST':
    case 'DISCONNECT':
    case 'NOTICE':
    case 'FRAME':
      return { command: cmd, message: payload() };
    case 'METRICS':
      return { command: cmd, report: payload() };
    case 'REPLY':
      return { command: cmd, credit: parseNumber(args[0]!, 'REPLY credit'), message: payload() };
    case 'CREDIT':
      return { command: cmd, credit: parseNumber(args[0]!, 'CREDIT credit') };
    case 'FEATURES':
      for (const word of args) if (!FEATURE_WORD.test(word)) fail('a feature is 1 to 32 of a-z, 0-9 and -');
      return { command: cmd, features: args };
    case 'BATCH':
      return { command: cmd, frames: splitBatch(frame, lf + 1, parseNumber(args[0]!, 'BATCH count')) };
    case 'HEARTBEAT':
    case 'BYE':
      return { command: cmd };
  }
}

const COLON = 0x3a;
const COMMA = 0x2c;

/**
 * BATCH's payload: `count` netstrings (`LEN:BYTES,`, LEN in ASCII decimal),
 * each a whole link message. The framing is checked here, all or nothing; the
 * messages themselves are read by decodeBatchItem, so one bad message costs
 * only itself.
 */
function splitBatch(frame: Buffer, start: number, count: number): Buffer[] {
  if (count < 2) fail('a BATCH holds at least 2 messages');
  const items: Buffer[] = [];
  let at = start;
  while (at < frame.length) {
    if (items.length === count) fail(`BATCH says ${count} messages and holds more`, at);
    let len = 0;
    let digits = 0;
    let b = frame[at]!;
    while (b >= 0x30 && b <= 0x39 && digits < 10) {
      len = len * 10 + (b - 0x30);
      digits++;
      b = frame[at + digits] ?? -1;
    }
    if (digits === 0 || b !== COLON) fail('a BATCH item is LEN:BYTES, with LEN in decimal', at);
    const body = at + digits + 1;
    if (body + len >= frame.length || frame[body + len] !== COMMA) fail('a BATCH item is cut short or lacks its trailing comma', at);
    items.push(frame.subarray(body, body + len));
    at = body + len + 1;
  }
  if (items.length !== count) fail(`BATCH says ${count} messages and holds ${items.length}`, at);
  return items;
}

/**
 * One message of a BATCH.
 *
 * @throws ProtocolError M2G_ERR_LINK as decodeLink does, and for a READY,
 *   FEATURES or BATCH inside a batch (they go alone).
 */
export function decodeBatchItem(frame: Buffer): LinkMessage {
  const message = decodeLink([frame]);
  if (NOT_IN_BATCH.has(message.command)) fail(`${message.command} cannot be part of a BATCH`);
  return message;
}

/**
 * One BATCH frame of link messages as encodeLink makes them (one frame
 * each), in order: one ZeroMQ message instead of `frames.length`.
 *
 * @throws RangeError for fewer than 2 or more than 999,999 messages.
 */
export function encodeBatch(frames: readonly Buffer[]): Buffer {
  const n = frames.length;
  if (n < 2 || n > MAX_NUMBER) throw new RangeError(`a BATCH holds 2 to ${MAX_NUMBER} messages (got ${n})`);
  const head = `${LINK_VERSION} BATCH ${n}\n`;
  let size = head.length;
  for (const f of frames) size += decimalLength(f.length) + f.length + 2;
  const out = Buffer.allocUnsafe(size);
  let at = out.write(head, 0, 'latin1');
  for (const f of frames) {
    at += out.write(String(f.length), at, 'latin1');
    out[at++] = COLON;
    at += f.copy(out, at);
    out[at++] = COMMA;
  }
  return out;
}

function decimalLength(n: number): number {
  let d = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    d++;
  }
  return d;
}

function checkNumber(n: number, what: string): void {
  if (!(Number.isInteger(n) && n >= 0 && n <= MAX_NUMBER)) throw new RangeError(`${what} must be an integer from 0 to ${MAX_NUMBER} (got ${n})`);
}

// The headers that ride on almost every message: built once.
const HEADERS = new Map<string, Buffer>();
function header(text: string, payload: boolean): Buffer {
  const key = payload ? `${text}\n` : text;
  let b = HEADERS.get(key);
  if (b === undefined) {
    b = Buffer.from(`${LINK_VERSION} ${key}`);
    if (HEADERS.size < 64) HEADERS.set(key, b);
  }
  return b;
}

/**
 * The frames of one link message (one frame), ready for a DEALER (a ROUTER
 * puts the peer's routing id in front).
 *
 * @throws RangeError for a credit or thread count outside 0..999999, or a
 *   READY name with a line feed.
 */
export function encodeLink(message: LinkMessage): Buffer[] {
  switch (message.command) {
    case 'READY':
      checkNumber(message.credit, 'credit');
      checkNumber(message.threads, 'threads');
      if (message.name.includes('\n')) throw new RangeError('a READY name cannot hold a line feed');
      return [Buffer.from(`${LINK_VERSION} READY ${message.credit} ${message.threads} ${message.name}`)];
    case 'REQUEST':
    case 'DISCONNECT':
    case 'NOTICE':
    case 'FRAME':
      return [Buffer.concat([header(message.command, true), message.message])];
    case 'METRICS':
      return [Buffer.concat([header('METRICS', true), message.report])];
    case 'REPLY':
      checkNumber(message.credit, 'credit');
      return [Buffer.concat([header(`REPLY ${message.credit}`, true), message.message])];
    case 'CREDIT':
      checkNumber(message.credit, 'credit');
      return [header(`CREDIT ${message.credit}`, false)];
    case 'HEARTBEAT':
    case 'BYE':
      return [header(message.command, false)];
    case 'FEATURES':
      if (message.features.length === 0 || !message.features.every((w) => FEATURE_WORD.test(w))) throw new RangeError('FEATURES lists 1 or more words of a-z, 0-9 and -');
      return [Buffer.from(`${LINK_VERSION} FEATURES ${message.features.join(' ')}`)];
    case 'BATCH':
      return [encodeBatch(message.frames)];
  }
}
