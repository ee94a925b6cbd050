/**
 * CURVE security for m2gate's ZeroMQ links (encryption plus an allow-list of
 * client public keys checked over ZAP). The entry point of the pieces:
 * key files, settings and socket options, the ZAP authenticator.
 *
 * Wiring, gateway (binds, CURVE server):
 *     const curve = resolveCurveConfig({ secret, allow });        // flags, else M2GATE_CURVE_*
 *     const zap = await startCurveAuthenticator(curve, log);       // before bind
 *     new Push({ ...serverSocketOptions(curve) }); ...
 *     // on close: close the sockets, then await zap?.close()
 * Service (connects, CURVE client):
 *     new Pull({ ...clientSocketOptions(resolveCurveConfig({ secret, serverKey })) });
 */

// Keys and key files
export {
  derivePublicKey,
  generateKeyPair,
  isZ85Key,
  readAllowList,
  readKeyPair,
  readPublicKey,
  resolveKeyPair,
  writeKeyPair,
  type CurveKeyPair,
} from './curve-keys.js';

// Settings and socket options
export {
  clientSocketOptions,
  curveClientOptions,
  curveFromEnv,
  curveServerOptions,
  resolveCurveConfig,
  serverSocketOptions,
  ZAP_DOMAIN,
  type CurveConfig,
  type CurveSettings,
  type CurveSocketOptions,
} from './curve-config.js';

// ZAP authenticator
export {
  startCurveAuthenticator,
  startZapAuthenticator,
  type ZapAuthenticator,
  type ZapAuthenticatorOptions,
  type ZapDecision,
  type ZapStats,
} from './zap-authenticator.js';
