/**
 * The first SIGTERM/SIGINT drains (`close()`), then the process ends by
 * itself with exit code 0 (1 if the drain timed out); a second signal exits at once.
 */
import type { Logger } from 'pino';

export function drainOnSignals(close: () => Promise<boolean>, log: Logger): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'draining');
    close().then(
      (drained) => {
        process.exitCode = drained ? 0 : 1;
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exitCode = 1;
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
