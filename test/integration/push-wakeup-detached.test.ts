/**
 * Wake-ups for a detached session (issue 14): the handset's socket is cut
 * (no Bye, no close handshake: a phone whose app the OS put to sleep), so
 * the edge keeps its session for a resume and takes what comes into the
 * replay buffer; the transport must wake the phone all the same. A real
 * gateway process, a private Dovecot and Prosody, the SMTP peer, and the
 * Web Push service of test/harness/push-service.ts (VAPID checked, payload
 * decrypted).
 *
 * While the carrier is attached nothing is woken. Once it is cut, a mail
 * wakes the phone at once; a chat and another mail within the interval add
 * to the next (coalesced) wake-up instead of sending their own; the handset
 * resumes (resumed: true) and gets the three exactly once, and the resume
 * drops the coalesced wake-up it no longer needs. Cut again, the count
 * starts afresh.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { xml } from '@xmpp/client';
import WebSocket from 'ws';
import type { Handset } from '../../device-protocol/handset.ts';
import type { HandsetConnectedEvent } from '../../device-protocol/handset-types.ts';
import { eventually } from '../../testing/index.ts';
import type { DovecotServer } from '../harness/dovecot.ts';
import { type Gateway, provisionDevice } from '../harness/gateway.ts';
import { plainXmppClient, type ProsodyServer } from '../harness/prosody.ts';
import type { PushService, PushSubscriptionJson } from '../harness/push-service.ts';
import type { SmtpPeer } from '../harness/smtp-peer.ts';
import { ADMIN, ApiClient } from './admin-api-helpers.ts';
import { handsetFor, WAIT } from './e2e-suite.ts';
import * as wake from './push-fixture.ts';

/**
 * The coalescing interval: long enough that the handset resumes within it on a
 * slow machine (the coalesced wake-up is then never due), short enough to wait
 * out once to see that it does not come.
 */
const INTERVAL_MS = 8000;

/**
 * A `ws` WebSocket for the SDK whose link can be cut: cut() destroys every
 * open socket (the gateway sees the TCP connection go, no Bye) and, until
 * mend(), every new one fails to connect (the SDK keeps trying with backoff).
 */
function cuttableLink() {
  const open = new Set<WebSocket>();
  let down = false;
  class CuttableWebSocket extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[], options?: WebSocket.ClientOptions) {
      // Port 9 (discard) refuses on loopback: a connect attempt fails at once.
      super(down ? 'ws://127.0.0.1:9/v1/ws' : url, protocols, options);
      open.add(this);
      this.on('close', () => open.delete(this));
    }
  }
  return {
    WebSocket: CuttableWebSocket,
    cut() {
      down = true;
      for (const ws of open) ws.terminate();
    },
    mend() {
      down = false;
    },
  };
}

describe('wake-ups of a detached session (socket cut, session kept for resume)', () => {
  const peers: Partial<wake.WakePeers> = {};
  let dovecot: DovecotServer;
  let smtp: SmtpPeer;
  let prosody: ProsodyServer;
  let push: PushService;
  let gw: Gateway;
  let api: ApiClient;
  let alice: Awaited<ReturnType<typeof plainXmppClient>>;
  let h: Handset;
  let sub: PushSubscriptionJson;
  const link = cuttableLink();
  const events: { name: string; body: any }[] = [];
  const connects: HandsetConnectedEvent[] = [];
  let chats = 0;

  const deliver = (subject: string) => wake.deliverMail(dovecot, subject);
  const chat = (text: string) =>
    alice.send(
      xml('message', { to: prosody.jid('bob'), type: 'chat', id: `c${++chats}` }, xml('body', {}, text)),
    );
  /** Items noted for wake-ups so far, by kind (mmgw_wakeup_items_total). */
  const noted = async () => ({
    mail: await wake.counterValue(gw, 'mmgw_wakeup_items_total', 'kind="mail"'),
    chat: await wake.counterValue(gw, 'mmgw_wakeup_items_total', 'kind="chat"'),
  });
  /** Devices with a carrier attached, from the node's heartbeat (every second). */
  const connected = async () => {
    const r = await api.call('GET', '/nodes');
    return (r.json.items as { connected: number }[]).reduce((n, node) => n + node.connected, 0);
  };
  const mailNew = () => events.filter((e) => e.name === 'mail.new').map((e) => e.body.header.subject);
  const chatIn = () => events.filter((e) => e.name === 'im.message').map((e) => e.body.body);

  before(async () => {
    ({ dovecot, smtp, push, prosody } = await wake.startWakePeers(peers));
    gw = await wake.startWakeGateway(push.caFile, INTERVAL_MS);
    api = await ApiClient.as(gw.adminUrl, ADMIN.name, ADMIN.password);
    alice = await plainXmppClient({
      port: prosody.c2sPort,
      domain: prosody.domain,
      user: 'alice',
      password: 'alice-pw',
      resource: 'detached',
    });
    const dev = await provisionDevice(gw.dataDir);
    h = handsetFor(gw, dev, { WebSocket: link.WebSocket as unknown as typeof WebSocket });
    h.on('event', (e) => events.push({ name: e.name, body: e.body }));
    h.on('connected', (c) => connects.push(c));
    await h.connect();
  });
  after(() =>
    wake.stopAll(
      [h],
      () => alice?.stop().catch(() => {}),
      () => gw?.stop(),
      () => wake.stopWakePeers(peers),
    ),
  );

  test('a session with its carrier attached is never woken', async () => {
    // The sync starts the INBOX watcher that pushes mail.new.
    await wake.addSyncedMail(h, dovecot, smtp);
    await h.request<any>('im.login', {
      jid: prosody.jid('bob'),
      password: 'bob-pw',
      host: prosody.host,
      port: prosody.c2sPort,
    });
    sub = push.subscribe();
    await h.registerPush(sub);

    await deliver('awake 1');
    await chat('awake chat 1');
    await eventually(
      'both pushed to the handset',
      () => mailNew().length === 1 && chatIn().length === 1,
      WAIT,
    );
    assert.deepEqual(mailNew(), ['awake 1']);
    assert.deepEqual(chatIn(), ['awake chat 1']);
    // The transport decides when the edge's reply comes, before the device sees the event; a
    // heartbeat's worth of time covers the metrics reaching the primary.
    await sleep(1000);
    assert.deepEqual(await noted(), { mail: 0, chat: 0 }, 'nothing noted for a wake-up');
    assert.equal(push.received.length, 0, 'no wake-up for a device with a carrier');
  });

  test('cut socket: one wake-up at once, the rest coalesced; the resume gets all exactly once', async (t) => {
    link.cut();
    await eventually('the edge saw the carrier go', async () => (await connected()) === 0, WAIT);
    assert.equal(connects.length, 1, 'the handset has not come back');

    const appendedAt = Date.now();
    await deliver('asleep 1');
    await eventually('the first wake-up', () => push.received.length >= 1, WAIT);
    const first = push.received[0]!;
    t.diagnostic(`APPEND to wake-up of the detached session: ${first.at - appendedAt} ms`);
    assert.equal(first.status, 201);
    assert.equal(first.endpoint, sub.endpoint);
    // Nothing from the attached test is counted: the device had a carrier then.
    assert.deepEqual(first.payload, { kind: 'mail', count: 1, mail: 1, chat: 0, text: 'New message' });

    await chat('asleep chat 1');
    await deliver('asleep 2');
    await eventually(
      'the chat and the second mail noted for the next wake-up',
      async () => JSON.stringify(await noted()) === JSON.stringify({ mail: 2, chat: 1 }),
      WAIT,
    );
    assert.equal(push.received.length, 1, 'coalesced: no wake-up of their own within the interval');
    assert.equal(connects.length, 1, 'still detached');
    assert.deepEqual(mailNew(), ['awake 1'], 'held in the replay buffer, not seen yet');

    link.mend();
    await eventually('the handset resumed', () => connects.length === 2, WAIT);
    assert.equal(connects[1]!.resumed, true);
    assert.equal(connects[1]!.sessionId, connects[0]!.sessionId);
    await eventually(
      'what was held is replayed',
      () => mailNew().length === 3 && chatIn().length === 2,
      WAIT,
    );
    const resumedAt = Date.now();
    assert.ok(resumedAt < first.at + INTERVAL_MS, 'resumed within the interval (else this test proves less)');
    assert.deepEqual(mailNew(), ['awake 1', 'asleep 1', 'asleep 2'], 'each mail exactly once');
    assert.deepEqual(chatIn(), ['awake chat 1', 'asleep chat 1'], 'each chat exactly once');

    // The coalesced wake-up was due at first.at + INTERVAL_MS; the resume dropped it.
    await sleep(first.at + INTERVAL_MS + 1500 - Date.now());
    assert.equal(push.received.length, 1, 'no wake-up for a device that is back');
    assert.equal(await wake.counterValue(gw, 'mmgw_wakeups_total', 'result="sent"'), 1);
  });

  test('cut again after the resume: the count starts afresh and the wake-up goes at once', async () => {
    link.cut();
    await eventually('the edge saw the carrier go', async () => (await connected()) === 0, WAIT);
    await chat('asleep chat 2');
    await eventually('a wake-up for the chat', () => push.received.length >= 2, WAIT);
    const again = push.received[1]!;
    assert.deepEqual(again.payload, { kind: 'chat', count: 1, mail: 0, chat: 1, text: 'New message' });
    assert.equal(again.urgency, 'high');
    // One push service, one signed VAPID JWT, reused within its lifetime (web-push-sender.ts).
    assert.equal(again.jwt, push.received[0]!.jwt);
    assert.ok(again.jwt !== undefined);
    link.mend();
    await eventually('resumed again', () => connects.length === 3, WAIT);
    assert.equal(connects[2]!.resumed, true);
    await eventually('the chat replayed', () => chatIn().length === 3, WAIT);
    assert.deepEqual(chatIn(), ['awake chat 1', 'asleep chat 1', 'asleep chat 2']);
  });
});
