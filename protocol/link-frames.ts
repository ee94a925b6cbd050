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
  | { command: 'METRICS'; report: Buffer };

export type LinkCommand = LinkMessage['command'];

// Each message is ONE ZeroMQ frame, "M2GL1 COMMAND [args]" then LF and the
// payload where there is one. A frame per field cost the gateway and the
// service about 20 us more CPU per request than PUSH/SUB on a trivial route
// (measured: every frame is another message part for ZeroMQ to queue, frame
// and signal), so the fields share one frame.
const ARGS: Record<LinkCommand, number> = { READY: 3, REQUEST: 0, DISCONNECT: 0, NOTICE: 0, FRAME: 0, REPLY: 1, CREDIT: 1, HEARTBEAT: 0, BYE: 0, METRICS: 0 };
const PAYLOAD: Record<LinkCommand, boolean> = { READY: false, REQUEST: true, DISCONNECT: true, NOTICE: true, FRAME: true, REPLY: true, CREDIT: false, HEARTBEAT: false, BYE: false, METRICS: true };
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
  if ((cmd === 'READY' ? words.length < 4 : args.length !== ARGS[cmd])) fail(`${cmd} takes ${ARGS[cmd]} argument(s), got ${words.length - 1}`);
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
    case 'HEARTBEAT':
    case 'BYE':
      return { command: cmd };
  }
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
  }
}
