import { createServer } from 'node:net';
import { once } from 'node:events';

/** A TCP port that was free a moment ago on 127.0.0.1 (for servers that cannot bind port 0). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return address.port;
}
