/** The CURVE flags (zmq/curve-config.ts says what they mean): each command takes only those it uses. */
import { resolveCurveConfig, type CurveConfig } from '../zmq/curve-config.js';
import { listFlag, type FlagValues } from './args.js';

/** The gateway side (it binds, so it is the CURVE server): its key pair and the services it admits. */
export const GATEWAY_CURVE_OPTIONS = {
  'curve-secret': { type: 'string' },
  'curve-allow': { type: 'string', multiple: true },
} as const;

/** A service (it connects, so it is a CURVE client): its key pair and the gateway's public key. */
export const SERVICE_CURVE_OPTIONS = {
  'curve-secret': { type: 'string' },
  'curve-server-key': { type: 'string' },
} as const;

export const GATEWAY_CURVE_HELP = `  --curve-secret KEY    CURVE on: this process's .key file (or Z85 secret)   M2GATE_CURVE_SECRET
  --curve-allow KEYS    allowed service keys or files of keys (repeatable)   M2GATE_CURVE_ALLOW
`;

export const SERVICE_CURVE_HELP = `  --curve-secret KEY    CURVE on: this process's .key file (or Z85 secret)              M2GATE_CURVE_SECRET
  --curve-server-key KEY  the gateway's .pub file or public key                       M2GATE_CURVE_SERVER_KEY
`;

/**
 * @throws M2gateError (CONFIG) for a bad key or an incomplete setting.
 */
export function curveFromFlags(values: FlagValues): CurveConfig | undefined {
  const allow = listFlag(values, 'curve-allow');
  return resolveCurveConfig({
    secret: values['curve-secret'] as string | undefined,
    serverKey: values['curve-server-key'] as string | undefined,
    ...(allow.length > 0 ? { allow } : {}),
  });
}
