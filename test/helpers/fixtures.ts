// The Mongrel2 1.12.2 captures are the project's own test data, byte for byte
// as captured (test/fixtures/mongrel2/README.md says how).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const FIXTURES_DIR = fileURLToPath(new URL('../fixtures/mongrel2/', import.meta.url));

export interface FixtureExpect {
  sender: string;
  conn_id: number;
  path: string;
  headers_encoding: 'json' | 'tnetstring';
  headers: Record<string, string | string[]>;
  body_length: number;
  body_base64: string;
}

export interface FixtureEntry {
  file: string;
  bytes: number;
  kind: string;
  protocol?: string;
  description: string;
  expect?: FixtureExpect;
}

export function fixture(name: string): Buffer {
  return readFileSync(join(FIXTURES_DIR, name));
}

export function fixtureIndex(): FixtureEntry[] {
  return JSON.parse(readFileSync(join(FIXTURES_DIR, 'index.json'), 'utf8')) as FixtureEntry[];
}
