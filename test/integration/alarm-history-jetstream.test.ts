/**
 * The alarm history conformance suite on JetStream (testing/alarm-history-suite.ts;
 * lmdb and memory run it beside the code): a real nats-server with JetStream,
 * and a second connection for "another node".
 */
import { after, before } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ALARM_STREAM, JetStreamAlarmHistory } from '../../server/alarms/jetstream-history.ts';
import type { AlarmHistory } from '../../server/alarms/history.ts';
import { alarmHistorySuite } from '../../testing/alarm-history-suite.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats.ts';

let nats: NatsServerHandle;
const connections: NatsConnection[] = [];
before(async () => {
  nats = await startNatsServer({ jetstream: true });
});
after(async () => {
  for (const nc of connections) await nc.close();
  await nats.stop();
});

async function connection(): Promise<NatsConnection> {
  const nc = await connect({ servers: nats.url });
  connections.push(nc);
  return nc;
}

alarmHistorySuite('jetstream', {
  async open(retention) {
    const nc = await connection();
    // Each test starts from an empty stream, with its retention.
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(ALARM_STREAM).catch(() => undefined);
    return JetStreamAlarmHistory.open(nc, { replicas: 1, ...(retention ? { retention } : {}) });
  },
  async reopen(_previous: AlarmHistory) {
    // Another node: its own connection, the same stream.
    return JetStreamAlarmHistory.open(await connection(), { replicas: 1 });
  },
});
