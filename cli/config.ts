/** Loads mongrel2.conf for the gateway commands. */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { packageRoot } from './package-root.js';
import { findServer, parseConfig, type ConfigServer, type Mongrel2Config } from '../protocol/mongrel2-conf.js';

/** The top-level mongrel2.conf shipped with m2gate (the embedded default). */
export const DEFAULT_CONFIG = resolve(packageRoot(), 'mongrel2.conf');

export interface LoadedConfig {
  file: string;
  /** Dir bases resolve against the config file's directory, like running Mongrel2 there. */
  cwd: string;
  config: Mongrel2Config;
  server: ConfigServer;
}

/** @throws ConfigError / M2gateError (code M2G_ERR_CONFIG) with file:line:column. */
export function loadConfig(file: string | undefined, server: string | undefined): LoadedConfig {
  const path = resolve(file ?? DEFAULT_CONFIG);
  const config = parseConfig(readFileSync(path, 'utf8'), path);
  return { file: path, cwd: dirname(path), config, server: findServer(config, server) };
}
