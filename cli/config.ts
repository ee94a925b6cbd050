/** Loads mongrel2.conf for the gateway commands. */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { packageRoot } from './package-root.js';
import { StartupError } from './args.js';
import { findServer, parseConfig, type ConfigServer, type Mongrel2Config } from '../protocol/mongrel2-conf.js';

/** The top-level mongrel2.conf shipped with m2gate (the embedded default). */
export const DEFAULT_CONFIG = resolve(packageRoot(), 'mongrel2.conf');

export interface LoadedConfig {
  file: string;
  /** The file's text, to point at the line of a setting that fails at start. */
  text: string;
  /** Dir bases resolve against the config file's directory, like running Mongrel2 there. */
  cwd: string;
  config: Mongrel2Config;
  server: ConfigServer;
}

const FILE_ERRORS: Record<string, string> = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'is a directory, not a file' };

/**
 * @throws StartupError when the file cannot be read;
 *   ConfigError / M2gateError (code M2G_ERR_CONFIG) with file:line:column.
 */
export function loadConfig(file: string | undefined, server: string | undefined): LoadedConfig {
  const path = resolve(file ?? DEFAULT_CONFIG);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException;
    throw new StartupError(`--config ${path}: ${(code && FILE_ERRORS[code]) ?? message}`);
  }
  const config = parseConfig(text, path);
  return { file: path, text, cwd: dirname(path), config, server: findServer(config, server) };
}

/** `file:line` of the first line of the config that quotes `value` (a spec), or the file alone. */
export function configLineOf(loaded: Pick<LoadedConfig, 'file' | 'text'>, value: string): string {
  const lines = loaded.text.split('\n');
  const i = lines.findIndex((l) => l.includes(`'${value}'`) || l.includes(`"${value}"`));
  return i < 0 ? loaded.file : `${loaded.file}:${i + 1}`;
}
