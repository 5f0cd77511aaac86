/**
 * The cluster of the transport takeover tests (issue #12): real Dovecot (with
 * an SMTP peer) and Prosody, 3 nats-servers with JetStream, an admin node, two
 * transports and an edge, each its own process and data directory, one
 * credentials key; a probe on the bus with its own Membership (the same code
 * and TTL as every node's) and the cluster's shared state.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bus } from '../../server/bus/bus.ts';
import { connectNatsBus } from '../../server/bus/nats.ts';
import { Membership } from '../../server/router/index.ts';
import { DEVICE_AUTH_TABLE } from '../../server/store/device-auth.ts';
import { NatsKvSharedState } from '../../server/store/shared/nats-kv.ts';
import { eventually } from '../../testing/index.ts';
import { type DovecotServer, type MailUser, startDovecot } from '../harness/dovecot.ts';
import { type Gateway, nextImei, startGateway, waitReady } from '../harness/gateway.ts';
import { type NatsCluster, startNatsCluster } from '../harness/nats-cluster.ts';
import { type ProsodyServer, startProsody, type XmppUser } from '../harness/prosody.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { ADMIN, ApiClient } from './admin-api-helpers.ts';
import { WAIT } from './e2e-suite.ts';

export interface TransportClusterRig {
  dovecot: DovecotServer;
  smtp: SmtpPeer;
  prosody: ProsodyServer;
  cluster: NatsCluster;
  probe: Bus;
  membership: Membership;
  state: NatsKvSharedState;
  adminDir: string;
  admin: Gateway;
  edge: Gateway;
  /** The two transports' node ids. */
  transportIds: [string, string];
  /** The running process of each transport. */
  transports: Map<string, Gateway>;
  /** A new device in the cluster's registry (through the admin API), known to the edges. */
  provision(): Promise<{ imei: string; secret: string }>;
  /** Starts (again) a transport under its node id and data directory. */
  startTransport(id: string): Promise<Gateway>;
  inMembership(id: string): boolean;
  stop(): Promise<void>;
}

/** Admin API login: ADMIN (admin-api-helpers.ts). */
export async function startTransportCluster(opts: {
  mailUsers: MailUser[];
  chatUsers: XmppUser[];
}): Promise<TransportClusterRig> {
  const tag = `${process.pid}`;
  const dirs: string[] = [];
  const gateways: Gateway[] = [];
  const cleanups: Array<() => Promise<void> | void> = [];
  const tempDir = (name: string) => {
    const dir = mkdtempSync(join(tmpdir(), `mmgw-transport-cluster-${name}-`));
    dirs.push(dir);
    return dir;
  };
  const stop = async () => {
    for (const g of gateways) await g.stop().catch(() => {});
    for (const cleanup of cleanups.reverse()) await cleanup();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  };
  try {
    const dovecot = await startDovecot({ users: opts.mailUsers });
    cleanups.push(() => dovecot.stop({ removeDir: true }));
    const smtp = await startSmtpPeer({ dovecot, starttls: false });
    cleanups.push(() => smtp.stop());
    const prosody = await startProsody({ domain: 'example.test', users: opts.chatUsers });
    cleanups.push(() => prosody.stop());
    const cluster = await startNatsCluster({ size: 3 });
    cleanups.push(() => cluster.stop());
    const bus = cluster.urls.join(',');
    const probe = await connectNatsBus({ servers: bus, name: `probe-${tag}` });
    cleanups.push(() => probe.close());
    const membership = new Membership({ bus: probe });
    membership.start();
    cleanups.push(() => membership.stop());
    const state = await NatsKvSharedState.connect({
      servers: cluster.urls,
      replicas: 3,
      name: `state-${tag}`,
    });
    cleanups.push(() => state.close());
    const env = {
      MMGW_JWT_SECRET: randomBytes(32).toString('base64url'),
      MMGW_CREDENTIALS_KEY: randomBytes(32).toString('base64'),
      MMGW_ADMIN_NAME: ADMIN.name,
      MMGW_ADMIN_PASSWORD: ADMIN.password,
    };
    const node = async (role: string, id: string, dataDir: string) => {
      const gw = await startGateway({ args: ['--role', role, '--bus', bus, '--node-id', id], env, dataDir });
      gateways.push(gw);
      return gw;
    };
    const adminDir = tempDir('admin');
    const admin = await node('admin', `adm-${tag}`, adminDir);
    const transportIds: [string, string] = [`ta-${tag}`, `tb-${tag}`];
    const transportDirs = new Map(transportIds.map((id) => [id, tempDir(id)]));
    const transports = new Map<string, Gateway>();
    const startTransport = async (id: string) => {
      const gw = await node('transport', id, transportDirs.get(id) ?? tempDir(id));
      transports.set(id, gw);
      return gw;
    };
    for (const id of transportIds) await startTransport(id);
    const edge = await node('edge', `edge-${tag}`, tempDir('edge'));
    await waitReady(edge);
    const inMembership = (id: string) => membership.nodes('transport').some((n) => n.nodeId === id);
    await eventually('both transports in the membership', () => transportIds.every(inMembership), WAIT);
    const api = await ApiClient.as(admin.adminUrl, ADMIN.name, ADMIN.password);
    const operator = await api.call('POST', '/operators', { id: 'op', name: 'Op' });
    assert.equal(operator.status, 201, operator.text);
    const deviceAuth = await state.table(DEVICE_AUTH_TABLE, { read: (raw) => raw });
    const provision = async () => {
      const imei = nextImei();
      const added = await api.call('POST', '/devices', { imei, operator: 'op' });
      assert.equal(added.status, 201, added.text);
      await eventually('the device published to the edges', () => deviceAuth.get(imei) !== undefined, WAIT);
      return { imei, secret: added.json.secret as string };
    };
    return {
      dovecot,
      smtp,
      prosody,
      cluster,
      probe,
      membership,
      state,
      adminDir,
      admin,
      edge,
      transportIds,
      transports,
      provision,
      startTransport,
      inMembership,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
