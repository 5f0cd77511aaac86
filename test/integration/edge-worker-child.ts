/**
 * One edge worker process for edge-cluster.test.ts: its own in-process bus,
 * a directory that knows every device with the secret "s", and startEdge on
 * the port given (reusePort: true). Talks to the test over the IPC channel:
 * sends {port} when listening (or {error}), answers 'count' with {sessions},
 * exits on 'stop'.
 */
import pino from 'pino';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { DeviceInfo } from '../../server/bus/bus.ts';
import { InProcessBus } from '../../server/bus/inproc.ts';
import { startEdge } from '../../server/edge/index.ts';

const [engine, port] = [process.argv[2] as 'uws' | 'portable', Number(process.argv[3])];
const bus = new InProcessBus();
const info = async (imei: string, secret?: string): Promise<DeviceInfo> => {
  if (secret !== undefined && secret !== 's') throw new GatewayError('auth.bad_secret');
  return { imei, operator: 'test', status: 'enabled' };
};
try {
  const edge = await startEdge({
    bus,
    nodeId: `worker-${process.pid}`,
    host: '127.0.0.1',
    port,
    engine,
    directory: { authenticate: info, lookup: (imei) => info(imei) },
    router: { pick: () => undefined },
    jwtSecret: 'test-secret-0123456789abcdef',
    logger: pino({ level: 'silent' }),
    reusePort: true,
  });
  process.on('message', async (msg) => {
    if (msg === 'count') process.send?.({ sessions: edge.sessionCount() });
    if (msg === 'stop') {
      await edge.close();
      await bus.close();
      process.exit(0);
    }
  });
  process.send?.({ port: edge.port });
} catch (err) {
  process.send?.({ error: (err as Error).message, code: (err as GatewayError).code });
  process.exit(0);
}
