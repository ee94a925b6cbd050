/**
 * Says in one line why a user's module (--app, a routes module) did not load:
 * where a SyntaxError is, that the module must be ESM, which file is missing.
 * Node keeps a SyntaxError's file:line only in the text it prints for an
 * uncaught error, not on the error, so the location comes from `node --check`
 * (run only on this failure path: about 50 ms).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ESM_HINT = 'routes and app modules are ES modules: name the file .mjs, or set "type": "module" in its package.json';

/** `file:line` of the first syntax error in `file`, if `node --check` finds one there. */
function syntaxLocation(file: string): string | undefined {
  const res = spawnSync(process.execPath, ['--no-warnings', '--check', file], { encoding: 'utf8', timeout: 5000 });
  if (res.status === 0) return undefined;
  // Node prints `path:line` (or a file: URL) of the offending line above its excerpt.
  for (const line of res.stderr.split('\n')) {
    const m = /^(?:file:\/\/)?(\/.*):(\d+)$/.exec(line.trim());
    if (m) return `${m[1]!}:${m[2]!}`;
  }
  return undefined;
}

/** The first stack frame in a file (not node's own): where a module threw while loading. */
function userFrame(err: Error): string | undefined {
  for (const line of (err.stack ?? '').split('\n').slice(1)) {
    const m = /((?:file:\/\/)?\/[^()\s]+):(\d+:\d+)\)?$/.exec(line.trim());
    if (m) return `${m[1]!.startsWith('file:') ? fileURLToPath(m[1]!) : m[1]!}:${m[2]!}`;
  }
  return undefined;
}

/**
 * The reason `file` failed to load, without a stack: `SyntaxError at FILE:LINE: …`,
 * `Cannot find module '…'`, or the error the module threw with the frame that threw it.
 */
export function moduleLoadReason(err: unknown, file: string): string {
  if (!(err instanceof Error)) return String(err);
  // "… imported from /…/dist/cli/gateway-command.js": our file, not the user's.
  const message = err.message.replace(/ imported from \S+$/, '');
  if (err.name === 'SyntaxError') {
    const where = syntaxLocation(file);
    const text = `SyntaxError${where ? ` at ${where}` : ''}: ${message}`;
    return /outside a module|Unexpected token 'export'|Cannot use import statement/.test(message) ? `${text} (${ESM_HINT})` : text;
  }
  if (/Cannot find module|ERR_MODULE_NOT_FOUND/.test(message)) return message;
  const frame = userFrame(err);
  const kind = err.name && err.name !== 'Error' ? `${err.name}: ` : '';
  return `${kind}${message}${frame ? ` (at ${frame})` : ''}`;
}
