/** Public surface of the bus: the contract, the codec and the three implementations. */
import type { Logger } from 'pino';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Bus } from './bus.ts';
import { InProcessBus } from './inproc.ts';
import { connectIpcBus } from './ipc.ts';

export * from './bus.ts';
export {
  decodePayload,
  decodeReply,
  encodeErrorReply,
  encodePayload,
  encodeReply,
  type ReplyEnvelope,
} from './codec.ts';
export {
  DEFAULT_REQUEST_TIMEOUT_MS,
  InProcessBus,
  type InProcessBusOptions,
  type RawHandler,
  type RawReply,
} from './inproc.ts';
export { connectIpcBus, type IpcChild, type ServeIpcBusOptions, serveIpcBus } from './ipc.ts';
// The NATS client is loaded only for a NATS bus (createBus), not by every process
// that imports the bus (an edge worker talks to its primary over IPC):
// connectNatsBus itself is in nats.ts.
export type { NatsBusOptions } from './nats.ts';

export interface BusConfig {
  /** inproc: one process; nats: `url` is the NATS server(s); ipc: an edge worker process talking to its primary. */
  kind: 'inproc' | 'nats' | 'ipc';
  /** NATS server URL(s), comma-separated allowed (`nats://10.0.0.1:4222,nats://10.0.0.2:4222`). */
  url?: string;
  /** Connection name (the node id) shown by NATS monitoring. */
  name?: string;
  logger?: Logger;
}

export async function createBus(config: BusConfig): Promise<Bus> {
  switch (config.kind) {
    case 'inproc':
      return new InProcessBus(config.logger ? { logger: config.logger } : {});
    case 'nats': {
      if (!config.url)
        throw new GatewayError('config.invalid', 'The NATS bus needs a URL (bus.url / --bus nats://…).');
      const servers = config.url
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
      const { connectNatsBus } = await import('./nats.ts');
      return connectNatsBus({
        servers,
        ...(config.name === undefined ? {} : { name: config.name }),
        ...(config.logger === undefined ? {} : { logger: config.logger }),
      });
    }
    case 'ipc':
      return connectIpcBus(config.logger ? { logger: config.logger } : {});
    default:
      throw new GatewayError(
        'config.invalid',
        `Unknown bus kind "${String((config as { kind: unknown }).kind)}".`,
      );
  }
}
