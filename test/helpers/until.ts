// Awaiting a condition on a stream of events without polling: test clients (RawClient in
// gateway.ts, WsTestClient in ws-client.ts) call their listeners on every data or end event.

/**
 * Resolves with `check()`'s first value other than undefined, checked now and whenever the
 * owner calls the listeners in `listeners`; rejects with what `check` throws.
 */
export function untilCheck<T>(listeners: Set<() => void>, check: () => T | undefined): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const run = (): void => {
      try {
        const v = check();
        if (v !== undefined) {
          listeners.delete(run);
          resolve(v);
        }
      } catch (err) {
        listeners.delete(run);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    };
    listeners.add(run);
    run();
  });
}
