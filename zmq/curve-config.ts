/**
 * CURVE settings of one m2gate process, and the zeromq socket options they
 * give. The side that binds is the CURVE server (the gateway: PUSH on
 * send_spec, SUB on recv_spec, ROUTER of the link); the side that connects is
 * the client (services: PULL, PUB, DEALER). So the gateway needs its secret
 * key and an allow-list of service public keys; a service needs its secret key
 * and the gateway's public key.
 *
 * Settings come from flags, else from the environment:
 *   --curve-secret      M2GATE_CURVE_SECRET      this process's secret key: Z85, or a .key file
 *   --curve-server-key  M2GATE_CURVE_SERVER_KEY  (clients) the server's public key: Z85, or a .pub file
 *   --curve-allow       M2GATE_CURVE_ALLOW       (servers) client public keys: comma-separated Z85
 *                                                keys or files of keys, one a line
 * No secret means CURVE is off (plain ZMTP, as Mongrel2 speaks it).
 */
import { ERROR_CODES, M2gateError } from '../protocol/errors.js';
import { readAllowList, readPublicKey, resolveKeyPair, type CurveKeyPair } from './curve-keys.js';

/**
 * The ZAP domain m2gate server sockets announce. The authenticator keeps one
 * allow-list per domain; m2gate uses this one for all its server sockets.
 */
export const ZAP_DOMAIN = 'm2gate';

/** Resolved CURVE settings; `undefined` where CURVE is off. */
export interface CurveConfig {
  /** This process's long-term key pair. */
  readonly pair: CurveKeyPair;
  /** The server's public key: required to connect (client sockets). */
  readonly serverKey?: string;
  /** Client public keys admitted by the ZAP authenticator: required to bind (server sockets). */
  readonly allow?: readonly string[];
}

/** Raw values as flags give them; each falls back to its environment variable. */
export interface CurveSettings {
  secret?: string;
  serverKey?: string;
  /** Entries, each possibly comma-separated (as a repeatable flag gives them). */
  allow?: string | readonly string[];
}

/** The zeromq.js constructor options of a CURVE socket: spread them into `new Push({...})`. */
export interface CurveSocketOptions {
  curveServer?: boolean;
  curveSecretKey?: string;
  curvePublicKey?: string;
  curveServerKey?: string;
  zapDomain?: string;
  zapEnforceDomain?: boolean;
}

function pick(value: string | undefined, env: string | undefined): string | undefined {
  if (value !== undefined && value !== '') return value;
  return env === undefined || env === '' ? undefined : env;
}

/**
 * Resolves CURVE settings: each field from `settings`, else from
 * `M2GATE_CURVE_SECRET`, `M2GATE_CURVE_SERVER_KEY`, `M2GATE_CURVE_ALLOW` in
 * `env` (default `process.env`). Reads and validates every key file now, so a
 * bad key stops the process at start.
 * @returns undefined when no secret is set (CURVE off).
 * @throws M2gateError (CONFIG) for a bad or unreadable key, a server key or
 *   allow-list without a secret, or an allow-list that resolves to no keys.
 */
export function resolveCurveConfig(settings: CurveSettings = {}, env: NodeJS.ProcessEnv = process.env): CurveConfig | undefined {
  const secret = pick(settings.secret, env.M2GATE_CURVE_SECRET);
  const serverKey = pick(settings.serverKey, env.M2GATE_CURVE_SERVER_KEY);
  const rawAllow = settings.allow ?? env.M2GATE_CURVE_ALLOW;
  const allowEntries = (typeof rawAllow === 'string' ? [rawAllow] : (rawAllow ?? []))
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  if (secret === undefined) {
    if (serverKey !== undefined || allowEntries.length > 0) {
      throw new M2gateError(
        ERROR_CODES.CONFIG,
        'a CURVE server key or allow-list was given without a secret key (--curve-secret / M2GATE_CURVE_SECRET)',
      );
    }
    return undefined;
  }
  const pair = resolveKeyPair(secret);
  let allow: string[] | undefined;
  if (allowEntries.length > 0) {
    allow = readAllowList(allowEntries);
    // An allow-list file that is present but empty is more likely a mistake than "admit no one".
    if (allow.length === 0) throw new M2gateError(ERROR_CODES.CONFIG, 'the CURVE allow-list (--curve-allow / M2GATE_CURVE_ALLOW) holds no keys');
  }
  return {
    pair,
    ...(serverKey === undefined ? {} : { serverKey: readPublicKey(serverKey) }),
    ...(allow === undefined ? {} : { allow }),
  };
}

/** {@link resolveCurveConfig} from the environment alone. */
export function curveFromEnv(env: NodeJS.ProcessEnv = process.env): CurveConfig | undefined {
  return resolveCurveConfig({}, env);
}

/**
 * Options for a CURVE server socket (one that binds). It announces
 * `domain` (default {@link ZAP_DOMAIN}) to the ZAP handler and enforces it:
 * with no ZAP handler running, libzmq then refuses every client instead of
 * admitting anyone who knows the server's public key.
 */
export function curveServerOptions(pair: CurveKeyPair, domain: string = ZAP_DOMAIN): CurveSocketOptions {
  return { curveServer: true, curveSecretKey: pair.secretKey, zapDomain: domain, zapEnforceDomain: true };
}

/** Options for a CURVE client socket (one that connects) to the server whose public key is given. */
export function curveClientOptions(pair: CurveKeyPair, serverPublicKey: string): CurveSocketOptions {
  return { curveServer: false, curveSecretKey: pair.secretKey, curvePublicKey: pair.publicKey, curveServerKey: serverPublicKey };
}

/** Server-socket options for a config, or none when CURVE is off. */
export function serverSocketOptions(config: CurveConfig | undefined): CurveSocketOptions {
  return config === undefined ? {} : curveServerOptions(config.pair);
}

/**
 * Client-socket options for a config, or none when CURVE is off.
 * @throws M2gateError (CONFIG) when CURVE is on but no server key is set.
 */
export function clientSocketOptions(config: CurveConfig | undefined): CurveSocketOptions {
  if (config === undefined) return {};
  if (config.serverKey === undefined) {
    throw new M2gateError(
      ERROR_CODES.CONFIG,
      "CURVE is on but the server's public key is missing (--curve-server-key / M2GATE_CURVE_SERVER_KEY)",
    );
  }
  return curveClientOptions(config.pair, config.serverKey);
}
