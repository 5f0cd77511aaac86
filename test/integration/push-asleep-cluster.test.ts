/**
 * A sleeping device across a rolling restart of the transports (issue 14), on
 * NATS with JetStream: an admin + edge node, two transport nodes, Dovecot and
 * the local Web Push service. The device syncs its INBOX, registers a Web Push
 * channel and goes away. While its transport restarts the other takes its
 * accounts over; when it returns, the other lets them go and the returning
 * node must bring the sleeping device's INBOX watcher up itself (no edge
 * tells of a session). Mail that arrives after both restarts still wakes it,
 * and back, it syncs that mail once.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Handset } from '../../device-protocol/handset.ts';
import { eventually } from '../../testing/index.ts';
import { type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import { type Gateway, type GatewayOptions, startGateway, waitReady } from '../harness/gateway.ts';
import { type NatsServerHandle, startNatsServer } from '../harness/nats.ts';
import { type PushService, type PushSubscriptionJson, startPushService } from '../harness/push-service.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { ADMIN, ApiClient, WAIT } from './admin-api-helpers.ts';
import { handsetFor } from './e2e-suite.ts';
import { BOB } from './mail-fixture.ts';
import { addSyncedMail, deliverMail } from './push-fixture.ts';

describe('a sleeping device across a rolling restart of the transports (JetStream)', () => {
  let nats: NatsServerHandle;
  let push: PushService;
  let dovecot: DovecotServer;
  let smtp: SmtpPeer;
  let front: Gateway;
  const transports: Gateway[] = [];
  const options: GatewayOptions[] = [];
  const dirs: string[] = [];
  const open: Handset[] = [];
  let sub: PushSubscriptionJson;
  let dev: { imei: string; secret: string };
  let account: string;
  let cursor: string;
  const tag = String(process.pid);
  // One secret for every node: sealed passwords open on either transport.
  const env = {
    MMGW_JWT_SECRET: randomBytes(32).toString('base64url'),
    MMGW_CREDENTIALS_KEY: randomBytes(32).toString('base64'),
    MMGW_PUSH_INTERVAL_MS: '1000',
  };

  before(async () => {
    nats = await startNatsServer({ jetstream: true });
    push = await startPushService();
    dovecot = await startDovecot({ users: [BOB] });
    smtp = await startSmtpPeer({ dovecot });
    const common = { ...env, NODE_EXTRA_CA_CERTS: push.caFile };
    front = await startGateway({
      args: ['--role', 'admin,edge', '--bus', nats.url, '--node-id', `front-${tag}`],
      env: { ...common, MMGW_ADMIN_NAME: ADMIN.name, MMGW_ADMIN_PASSWORD: ADMIN.password },
    });
    for (const id of [`t1-${tag}`, `t2-${tag}`]) {
      const dataDir = mkdtempSync(join(tmpdir(), `mmgw-${id}-`));
      dirs.push(dataDir);
      options.push({
        dataDir,
        args: ['--role', 'transport', '--bus', nats.url, '--node-id', id],
        env: common,
      });
    }
    transports.push(...(await Promise.all(options.map((o) => startGateway(o)))));
    await Promise.all([front, ...transports].map((g) => waitReady(g)));
  });
  after(async () => {
    for (const h of open) await h.close().catch(() => {});
    await Promise.all([front?.stop(), ...transports.map((t) => t.stop())]);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    await push?.stop();
    await smtp?.stop();
    await dovecot?.stop({ removeDir: true });
    await nats?.stop();
  });

  test('mail after both transports restarted still wakes it; back, it syncs the mail once', async () => {
    const api = await ApiClient.as(front.adminUrl, ADMIN.name, ADMIN.password);
    assert.equal((await api.call('POST', '/operators', { id: 'op1', name: 'Operator 1' })).status, 201);
    const r = await api.call('POST', '/devices', { operator: 'op1', imei: '490154203237518' });
    assert.equal(r.status, 201, r.text);
    dev = { imei: r.json.device.imei as string, secret: r.json.secret as string };
    const h = handsetFor(front, dev);
    open.push(h);
    await h.connect();
    ({ account, cursor } = await addSyncedMail(h, dovecot, smtp));
    sub = push.subscribe();
    await h.registerPush(sub);
    await h.close();

    // A rolling restart of the transports, each waited for until ready, as the README's upgrade says.
    for (const [i, t] of transports.entries()) {
      await t.stop();
      transports[i] = await startGateway(options[i]!);
      await waitReady(transports[i]!);
    }

    await deliverMail(dovecot, 'after the restarts');
    await eventually(
      'a mail wake-up after the rolling restart',
      () => push.received.some((p) => p.endpoint === sub.endpoint && (p.payload as any)?.kind === 'mail'),
      WAIT,
    );
    const back = handsetFor(front, dev);
    open.push(back);
    await back.connect();
    const sync = await back.request<any>('mail.sync', { account, folder: 'INBOX', limit: 50, cursor });
    assert.deepEqual(
      sync.items.map((i: any) => i.subject),
      ['after the restarts'],
    );
  });
});
