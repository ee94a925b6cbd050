#!/usr/bin/env node
/** The `m2gate` command: one binary, one subcommand per role. */
import { packageVersion } from './package-root.js';
import { StartupError, UsageError } from './args.js';
import { serviceCommand } from './service-command.js';
import { gatewayCommand } from './gateway-command.js';
import { startCommand } from './start-command.js';
import { keygenCommand } from './keygen-command.js';
import { M2gateError } from '../protocol/errors.js';

const HELP = `Usage: m2gate <command> [options]

Commands:
  start                     the all-in-one default: gateway plus local services (npm start)
  gateway                   serve HTTP from a mongrel2.conf, without Mongrel2
  service [ROUTES_MODULE]   run a Mongrel2 handler whose routes run on worker threads
  keygen [--out PREFIX]     write a CURVE key pair for encrypted links (PREFIX.key, PREFIX.pub)

Run 'm2gate <command> --help' for a command's options.
  -h, --help       this text
  -v, --version    print the version
`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'service':
      return serviceCommand(rest);
    case 'gateway':
      return gatewayCommand(rest);
    case 'start':
      return startCommand(rest);
    case 'keygen':
      return keygenCommand(rest);
    case '-v':
    case '--version':
      process.stdout.write(`${packageVersion()}\n`);
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
  // Our own errors (bad config, a port in use, ...) are explained by their message; others need the stack.
  const text = err instanceof M2gateError || err instanceof StartupError ? err.message : ((err as Error).stack ?? String(err));
  process.stderr.write(`m2gate: ${text}\n`);
  process.exitCode = 1;
});
