/**
 * Forked by bus-nats.test.ts: runs the bus conformance cases in a child
 * process over connectIpcBus() (the parent serves the broker) and reports
 * each result back over the same IPC channel. With argument `cross` it
 * instead talks to subjects the parent serves, and serves one for it.
 */
import { connectIpcBus } from '../../server/bus/ipc.ts';
import { type BusFactory, conformanceCases, runCase } from './bus-conformance.ts';

const send = (msg: unknown): Promise<void> =>
  new Promise((resolve) => process.send!({ conformance: msg }, undefined, undefined, () => resolve()));

const factory: BusFactory = async () => {
  const a = connectIpcBus();
  const b = connectIpcBus();
  return {
    a,
    b,
    async close() {
      await a.close();
      await b.close();
    },
  };
};

async function runAll(): Promise<void> {
  for (const c of conformanceCases) {
    try {
      await runCase(factory, c);
      await send({ name: c.name, ok: true });
    } catch (err) {
      await send({
        name: c.name,
        ok: false,
        error: err instanceof Error ? (err.stack ?? err.message) : String(err),
      });
    }
  }
}

async function cross(): Promise<void> {
  const bus = connectIpcBus();
  bus.subscribe('xproc.child.echo', (msg) => ({ child: process.pid, echo: msg.data }));
  await bus.flush();
  const fromParent = await bus.request('xproc.parent.echo', { bytes: new Uint8Array([9, 8, 7]) });
  await send({ name: 'cross', ok: true, fromParent });
  // Stay until the parent has asked us and says goodbye.
  await new Promise<void>((resolve) => {
    process.on('message', (m: { conformance?: string }) => {
      if (m?.conformance === 'exit') resolve();
    });
  });
  await bus.close();
}

await (process.argv[2] === 'cross' ? cross() : runAll());
await send({ done: true });
process.disconnect();
