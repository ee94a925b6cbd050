#!/usr/bin/env node
/** The `m2gate` command: one binary, one subcommand per role. */
import { readFileSync } from 'node:fs';
import { UsageError } from './args.js';
import { serviceCommand } from './service-command.js';

const HELP = `Usage: m2gate <command> [options]

Commands:
  service [ROUTES_MODULE]   run a Mongrel2 handler whose routes run on worker threads

Run 'm2gate <command> --help' for a command's options.
  -h, --help       this text
  -v, --version    print the version
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'service':
      return serviceCommand(rest);
    case '-v':
    case '--version':
      process.stdout.write(`${version()}\n`);
      return;
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(HELP);
      return;
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(`m2gate: ${err.message}\nRun 'm2gate --help' for usage.\n`);
    process.exitCode = 2;
    return;
  }
  process.stderr.write(`m2gate: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
});
