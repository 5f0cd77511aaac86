/**
 * Wake-ups of a phone that sleeps for long (issue 14): a real single-node
 * gateway, Dovecot, Prosody and the local Web Push service. A device that can
 * be woken keeps its chat sessions past the linger time (as its INBOX watcher
 * stays on IDLE), and a restart of the gateway brings its INBOX watcher and
 * chat sessions back without a session of the device, so mail and chat that
 * arrive while it sleeps still wake it; back, it gets each item once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Handset } from '../../device-protocol/handset.ts';
import { eventually } from '../../testing/index.ts';
import { type Gateway, provisionDevice } from '../harness/gateway.ts';
import type { PushSubscriptionJson } from '../harness/push-service.ts';
import { WAIT } from './e2e-suite.ts';
import {
  addSyncedMail,
  asAlice,
  connectKept,
  deliverMail,
  imLoginBob,
  startWakeGateway,
  startWakePeers,
  stopAll,
  stopWakePeers,
  type WakePeers,
} from './push-fixture.ts';

/** How long a gone device's XMPP sessions stay (im.lingerMs): short, so that the test sleeps past it. */
const LINGER_MS = 1500;
const INTERVAL_MS = 1000;

describe('a device asleep past the linger time, and across a restart of the gateway', () => {
  const peers: Partial<WakePeers> = {};
  const open: Handset[] = [];
  const dataDir = mkdtempSync(join(tmpdir(), 'mmgw-asleep-'));
  let gw: Gateway;
  let dev: { imei: string; secret: string };
  let sub: PushSubscriptionJson;
  let chatAccount: string;

  const start = () =>
    startWakeGateway(peers.push!.caFile, INTERVAL_MS, [], {
      dataDir,
      env: { MMGW_IM_LINGER_MS: String(LINGER_MS) },
    });
  /** The wake-ups of `kind` that reached the device's subscription so far. */
  const wakes = (kind: 'mail' | 'chat') =>
    peers.push!.received.filter((r) => r.endpoint === sub.endpoint && (r.payload as any)?.kind === kind);

  before(async () => {
    await startWakePeers(peers);
    gw = await start();
    dev = await provisionDevice(dataDir);
  });
  after(async () => {
    await stopAll(
      open,
      () => gw?.stop(),
      () => stopWakePeers(peers),
    );
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('chat that arrives after the linger time still wakes a device with a channel', async () => {
    const h = await connectKept(gw, dev, open);
    chatAccount = (await imLoginBob(h, peers.prosody!)).account;
    sub = peers.push!.subscribe();
    await h.registerPush(sub);
    await h.close();
    // Past the linger time: without a channel the XMPP session would be closed by now.
    await sleep(LINGER_MS * 2.5);
    await asAlice(peers.prosody!, 'late', (sendBob) => sendBob('late-1', 'still there, bob?'));
    await eventually('a chat wake-up after the linger time', () => wakes('chat').length === 1, WAIT);
  });

  test('after a restart, new mail and chat wake the sleeping device; back, it gets each once', async () => {
    const h = await connectKept(gw, dev, open);
    const { account, cursor } = await addSyncedMail(h, peers.dovecot!, peers.smtp!);
    await h.close();
    await gw.stop();
    gw = await start();
    // The restored chat sessions linger first, as after any restart: sleep past that too.
    await sleep(LINGER_MS * 2.5);
    const chatBefore = wakes('chat').length;

    await deliverMail(peers.dovecot!, 'while asleep');
    await eventually('a mail wake-up after the restart', () => wakes('mail').length === 1, WAIT);
    await asAlice(peers.prosody!, 'later', (sendBob) => sendBob('late-2', 'and after the restart?'));
    await eventually('a chat wake-up after the restart', () => wakes('chat').length === chatBefore + 1, WAIT);

    const back = await connectKept(gw, dev, open);
    const sync = await back.request<any>('mail.sync', { account, folder: 'INBOX', limit: 50, cursor });
    assert.deepEqual(
      sync.items.map((i: any) => i.subject),
      ['while asleep'],
    );
    const caught = await back.request<any>('im.catchup', { account: chatAccount });
    assert.deepEqual(
      caught.messages.filter((m: any) => m.direction === 'in').map((m: any) => m.body),
      ['still there, bob?', 'and after the restart?'],
    );
  });
});
