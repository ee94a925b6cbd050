/** The CURVE flags every command shares (zmq/curve-config.ts says what they mean). */
import { resolveCurveConfig, type CurveConfig } from '../zmq/curve-config.js';
import { listFlag, type FlagValues } from './args.js';

export const CURVE_OPTIONS = {
  'curve-secret': { type: 'string' },
  'curve-server-key': { type: 'string' },
  'curve-allow': { type: 'string', multiple: true },
} as const;

export const CURVE_HELP = `  --curve-secret KEY     CURVE on: this process's .key file (or Z85 secret)  M2GATE_CURVE_SECRET
  --curve-server-key KEY services: the gateway's .pub file or public key     M2GATE_CURVE_SERVER_KEY
  --curve-allow KEYS     gateway: allowed service keys or files (repeatable) M2GATE_CURVE_ALLOW
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
