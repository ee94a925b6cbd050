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
  | { command: 'REPLY'; credit: number; message: Buffer }
  | { command: 'CREDIT'; credit: number }
  | { command: 'HEARTBEAT' }
  | { command: 'BYE' };

export type LinkCommand = LinkMessage['command'];

const VERSION = Buffer.from(LINK_VERSION);
const COMMANDS: Record<LinkCommand, Buffer> = {
  READY: Buffer.from('READY'),
  REQUEST: Buffer.from('REQUEST'),
  DISCONNECT: Buffer.from('DISCONNECT'),
  REPLY: Buffer.from('REPLY'),
  CREDIT: Buffer.from('CREDIT'),
  HEARTBEAT: Buffer.from('HEARTBEAT'),
  BYE: Buffer.from('BYE'),
};
const FRAMES_AFTER: Record<LinkCommand, number> = { READY: 3, REQUEST: 1, DISCONNECT: 1, REPLY: 2, CREDIT: 1, HEARTBEAT: 0, BYE: 0 };
const MAX_NUMBER = 999_999;

// Credits of 0 and 1 ride on almost every REPLY: allocate them once.
const SMALL = Array.from({ length: 16 }, (_, i) => Buffer.from(String(i)));
const number = (n: number): Buffer => SMALL[n] ?? Buffer.from(String(n));

const fail = (message: string): never => {
  throw new ProtocolError(ERROR_CODES.LINK, message, 0);
};

function parseNumber(frame: Buffer, what: string): number {
  if (frame.length === 0 || frame.length > 6) fail(`${what} must be 1 to 6 ASCII digits`);
  let n = 0;
  for (const byte of frame) {
    if (byte < 0x30 || byte > 0x39) fail(`${what} must be 1 to 6 ASCII digits`);
    n = n * 10 + (byte - 0x30);
  }
  return n;
}

/**
 * Reads one link message (without the ROUTER's routing id).
 *
 * @throws ProtocolError M2G_ERR_LINK on another version tag, an unknown
 *   command, a wrong frame count or a malformed number.
 */
export function decodeLink(frames: readonly Buffer[]): LinkMessage {
  const [version, commandFrame] = frames;
  if (version === undefined || !version.equals(VERSION)) fail(`not an ${LINK_VERSION} message (version tag '${String(version?.subarray(0, 16) ?? '')}')`);
  const command = commandFrame?.toString('latin1') ?? '';
  if (!Object.hasOwn(FRAMES_AFTER, command)) fail(`unknown command '${command.slice(0, 16)}'`);
  const cmd = command as LinkCommand;
  if (frames.length !== 2 + FRAMES_AFTER[cmd]) fail(`${cmd} takes ${FRAMES_AFTER[cmd]} frame(s) after the command, got ${frames.length - 2}`);
  const at = (i: number): Buffer => frames[2 + i]!;
  switch (cmd) {
    case 'READY': {
      const credit = parseNumber(at(0), 'READY credit');
      const threads = parseNumber(at(1), 'READY threads');
      if (credit < 1 || threads < 1) fail('READY credit and threads must be at least 1');
      return { command: cmd, credit, threads, name: at(2).toString('utf8') };
    }
    case 'REQUEST':
    case 'DISCONNECT':
      return { command: cmd, message: at(0) };
    case 'REPLY':
      return { command: cmd, credit: parseNumber(at(0), 'REPLY credit'), message: at(1) };
    case 'CREDIT':
      return { command: cmd, credit: parseNumber(at(0), 'CREDIT credit') };
    case 'HEARTBEAT':
    case 'BYE':
      return { command: cmd };
  }
}

function checkNumber(n: number, what: string): void {
  if (!(Number.isInteger(n) && n >= 0 && n <= MAX_NUMBER)) throw new RangeError(`${what} must be an integer from 0 to ${MAX_NUMBER} (got ${n})`);
}

/**
 * The frames of one link message, ready for a DEALER (a ROUTER puts the
 * peer's routing id in front).
 *
 * @throws RangeError for a credit or thread count outside 0..999999.
 */
export function encodeLink(message: LinkMessage): Buffer[] {
  const head = [VERSION, COMMANDS[message.command]];
  switch (message.command) {
    case 'READY':
      checkNumber(message.credit, 'credit');
      checkNumber(message.threads, 'threads');
      return [...head, number(message.credit), number(message.threads), Buffer.from(message.name)];
    case 'REQUEST':
    case 'DISCONNECT':
      return [...head, message.message];
    case 'REPLY':
      checkNumber(message.credit, 'credit');
      return [...head, number(message.credit), message.message];
    case 'CREDIT':
      checkNumber(message.credit, 'credit');
      return [...head, number(message.credit)];
    case 'HEARTBEAT':
    case 'BYE':
      return head;
  }
}
