/** `--admin HOST:PORT`: the admin listener (admin/admin-server.ts) of every command. */
import type { Logger } from 'pino';
import { AdminServer, parseAdminAddress, type AdminAddress, type AdminSource } from '../admin/admin-server.js';
import { StartupError, UsageError, type FlagValues } from './args.js';

export const ADMIN_OPTIONS = { admin: { type: 'string' } } as const;

/** Where `m2gate start` puts it unless told otherwise: loopback only, never the public port. */
export const START_ADMIN_DEFAULT = '127.0.0.1:6768';

export const ADMIN_HELP = `  --admin HOST:PORT     admin listener: /metrics, /status.json, /healthz,    M2GATE_ADMIN
                        /readyz and the dashboard at / (default: off; 'off')
`;

/** The address, or undefined when off (no flag and no default, or `off`). @throws UsageError on a malformed address. */
export function adminFromFlags(values: FlagValues, fallback?: string): AdminAddress | undefined {
  const text = (values.admin as string | undefined) ?? fallback;
  if (text === undefined || text === 'off') return undefined;
  try {
    return parseAdminAddress(text);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** Opens the admin listener. @throws StartupError naming the address when it cannot listen. */
export async function startAdmin(source: AdminSource, addr: AdminAddress, log: Logger): Promise<AdminServer> {
  const server = new AdminServer(source, (err) => log.error({ err }, 'admin request failed'));
  try {
    const bound = await server.listen(addr);
    log.info({ admin: `http://${bound.host.includes(':') ? `[${bound.host}]` : bound.host}:${bound.port}/` }, 'admin listening');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new StartupError(`admin address ${addr.host}:${addr.port} (from --admin): ${e.code === 'EADDRINUSE' ? 'address already in use' : e.message}`, { cause: err });
  }
  return server;
}
