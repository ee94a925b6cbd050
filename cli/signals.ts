/**
 * The first SIGTERM/SIGINT drains (`close()`), then the process ends by
 * itself with exit code 0 (1 if the drain timed out); a second signal exits at once.
 *
 * A service started by `m2gate start` (M2GATE_SUPERVISED=1, with an IPC
 * channel to its parent) ignores SIGINT: Ctrl-C reaches the whole process
 * group, and the parent drains its services itself with SIGTERM, after the
 * gateway. When the parent dies the channel closes and the service drains.
 */
import type { Logger } from 'pino';

export function drainOnSignals(close: () => Promise<boolean>, log: Logger): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals | 'parent-gone'): void => {
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
  // `process.connected` exists only with an IPC channel: false once it has closed, which it
  // may have before this runs (the parent killed while the service loaded its threads).
  const supervised = process.env.M2GATE_SUPERVISED === '1' && process.connected !== undefined;
  process.on('SIGTERM', onSignal);
  if (supervised) {
    process.on('SIGINT', () => log.debug('SIGINT ignored: the supervisor stops this process'));
    if (!process.connected) {
      onSignal('parent-gone');
      return;
    }
    process.once('disconnect', () => {
      if (!stopping) onSignal('parent-gone');
    });
    // The channel must not keep the process alive once it has drained.
    process.channel?.unref();
  } else {
    process.on('SIGINT', onSignal);
  }
}

/**
 * SIGHUP re-reads what `reload` reads (a service's --connect-file). A list that
 * fails to load is logged and changes nothing: the service keeps its gateways.
 */
export function reloadOnHangup(reload: () => unknown, log: Logger): void {
  process.on('SIGHUP', () => {
    try {
      reload();
    } catch (err) {
      log.error({ err: (err as Error).message }, 'SIGHUP: the gateway list was not reloaded (the current one is kept)');
    }
  });
}
