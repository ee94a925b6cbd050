/** Reading a child process's NDJSON log (pino) line by line. */
import type { Readable } from 'node:stream';

export type LogLine = Record<string, unknown> & { msg?: string; raw?: string };

/**
 * Calls `onLine` for each complete line of `stream` (a JSON object, or
 * `{ raw }` for anything else), then `afterChunk` once per chunk.
 */
export function readJsonLines(stream: Readable, onLine: (line: LogLine) => void, afterChunk?: () => void): void {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    for (const text of parts) {
      if (text === '') continue;
      let line: LogLine;
      try {
        const parsed: unknown = JSON.parse(text);
        line = typeof parsed === 'object' && parsed !== null ? (parsed as LogLine) : { raw: text };
      } catch {
        line = { raw: text };
      }
      onLine(line);
    }
    afterChunk?.();
  });
}
