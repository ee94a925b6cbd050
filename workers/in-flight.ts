/**
 * The requests a service has received and not yet answered or abandoned, and
 * the wait for none to be left: the drain of a graceful stop (README, "what
 * the service guarantees": SIGTERM finishes in-flight requests within
 * --drain-timeout).
 */
export class InFlight<T> {
  readonly #items = new Set<T>();
  #onIdle: (() => void) | undefined;

  get size(): number {
    return this.#items.size;
  }

  add(item: T): void {
    this.#items.add(item);
  }

  /** The item was answered or abandoned; the last one resolves waitIdle(). */
  settle(item: T): void {
    this.#items.delete(item);
    if (this.#items.size === 0 && this.#onIdle) {
      const onIdle = this.#onIdle;
      this.#onIdle = undefined;
      onIdle();
    }
  }

  /** A copy, so the caller may settle items while it iterates. */
  snapshot(): T[] {
    return [...this.#items];
  }

  /** Resolves true once nothing is in flight, false after `timeoutMs`. One waiter at a time. */
  waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.#items.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.#onIdle = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }
}
