/**
 * Checks the service's ZeroMQ endpoints before anything starts.
 *
 * zeromq checks an endpoint only when a socket connects to it, and the PULL
 * connects later, in a callback, where a typo would crash the process (or, for
 * the PUB, leave it hanging with the pool up). So every endpoint is tried at
 * start on a throwaway PUB, a socket that never takes a message: against the
 * front's PUSH the handshake fails, to its SUB it sends nothing.
 */
import { Publisher } from 'zeromq';
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';

/**
 * Connects a throwaway PUB (linger 0) to each endpoint, then closes it.
 *
 * @throws M2gateError (M2G_ERR_OPTION) naming the endpoint zeromq rejects (the zeromq error as `cause`).
 */
export function checkEndpoints(specs: readonly string[]): void {
  const probe = new Publisher({ linger: 0 });
  try {
    for (const spec of specs) {
      try {
        probe.connect(spec);
      } catch (err) {
        throw new M2gateError(ERROR_CODES.OPTION, `invalid endpoint '${spec}': ${(err as Error).message}`, { cause: err });
      }
    }
  } finally {
    probe.close();
  }
}
