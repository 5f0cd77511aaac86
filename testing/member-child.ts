/**
 * A cluster node's membership in a process of its own, for the kill -9 test
 * (test/integration/membership-conformance.test.ts): writes its record to the
 * members table given as argv[2] under the node id argv[3], on the NATS
 * servers that follow, until it is killed.
 */
import type { NodeHeartbeat } from '../server/bus/bus.ts';
import { InProcessBus } from '../server/bus/inproc.ts';
import { Membership, readMemberRecord, startMemberRecord } from '../server/router/membership.ts';
import { NatsKvSharedState } from '../server/store/shared/nats-kv.ts';
import { INTERVAL_MS, nodeInfo } from './membership-conformance.ts';

const [table, id, ...servers] = process.argv.slice(2) as [string, string, ...string[]];
const state = await NatsKvSharedState.connect({ servers, replicas: 3, name: id });
const rows = await state.table<NodeHeartbeat>(table, { read: readMemberRecord });
const membership = new Membership({ bus: new InProcessBus() });
membership.start();
membership.attachTable(rows);
const info = { ...nodeInfo(id, ['transport']), memberTable: true };
startMemberRecord(rows, () => info, { intervalMs: INTERVAL_MS });
process.stdout.write('writing\n');
// Runs until killed.
setInterval(() => {}, 60_000);
