/**
 * End to end in one OS process per gateway: `mmgw start --role all` (in-process
 * bus), and the same with two edge worker processes reaching the primary's
 * roles over the IPC bus.
 */
import { provisionDevice, startGateway } from '../harness/gateway.ts';
import { defineE2eSuite } from './e2e-suite.ts';

defineE2eSuite('one process, --role all, in-process bus', async () => {
  const gw = await startGateway({ args: ['--role', 'all'] });
  return {
    url: gw.url,
    transportNodeIds: [gw.nodeId],
    provision: () => provisionDevice(gw.dataDir),
    stop: async () => void (await gw.stop()),
  };
});

// Long-poll requests of one session are separate HTTP requests that the kernel
// may hand to either worker: a worker that does not hold the session claims it
// over the IPC bus and serves the request (server/edge/long-poll.ts).
defineE2eSuite('--role all with 2 edge worker processes on the IPC bus', async () => {
  const gw = await startGateway({ args: ['--role', 'all', '--edge-workers', '2'] });
  return {
    url: gw.url,
    transportNodeIds: [gw.nodeId],
    provision: () => provisionDevice(gw.dataDir),
    stop: async () => void (await gw.stop()),
  };
});
