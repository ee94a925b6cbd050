/**
 * The gateways a service joins (`--connect`, repeatable, and `--connect-file`):
 * the list from the command line or the environment, plus a file of endpoints
 * that is read again on SIGHUP, so a gateway is added or removed without
 * restarting the service.
 *
 * File format: endpoints separated by white space, commas or line feeds; `#`
 * starts a comment up to the end of its line.
 */
import { readFileSync } from 'node:fs';
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';
import { checkEndpoints } from './endpoint-probe.js';

/** The endpoints named in `text` (a --connect-file's contents), in order, without repeats. */
export function parseGatewayList(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    for (const token of line.replace(/#.*/, '').split(/[\s,]+/)) {
      if (token !== '' && !out.includes(token)) out.push(token);
    }
  }
  return out;
}

/**
 * `fixed` (the flags) followed by the file's endpoints, without repeats, each
 * checked with zeromq.
 *
 * @throws M2gateError (M2G_ERR_CONFIG) when the file cannot be read, or it and `fixed` name no endpoint.
 * @throws M2gateError (M2G_ERR_OPTION) naming an endpoint zeromq rejects.
 */
export function readGatewayList(fixed: readonly string[], file: string | undefined): string[] {
  const list = [...fixed];
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new M2gateError(ERROR_CODES.CONFIG, `cannot read the gateway list ${file}: ${(err as Error).message}`, { cause: err });
    }
    for (const spec of parseGatewayList(text)) if (!list.includes(spec)) list.push(spec);
  }
  if (list.length === 0) throw new M2gateError(ERROR_CODES.CONFIG, `no gateway to connect to: ${file ?? 'the list'} names no endpoint`);
  checkEndpoints(list);
  return list;
}

/**
 * How much of the service's credit each of `gateways` gets: an equal share,
 * so that no gateway can have more than its share waiting at this service
 * ahead of another gateway's requests, but never less than one request per
 * worker thread, so that a gateway alone (the others idle) still keeps every
 * thread busy.
 */
export function gatewayShare(credit: number, threads: number, gateways: number): number {
  return Math.min(999_999, Math.max(threads, Math.ceil(credit / Math.max(1, gateways))));
}
