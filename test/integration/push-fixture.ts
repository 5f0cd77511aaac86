/** What the wake-up suites share: mail into the sleeping device's INBOX, the wake-up counters, handsets closed at the end. */
import assert from 'node:assert/strict';
import { xml } from '@xmpp/client';
import type { Handset } from '../../device-protocol/handset.ts';
import { type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import { type Gateway, startGateway } from '../harness/gateway.ts';
import { plainXmppClient, type ProsodyServer, startProsody } from '../harness/prosody.ts';
import { type PushService, startPushService } from '../harness/push-service.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { ADMIN, type ApiClient } from './admin-api-helpers.ts';
import { handsetFor } from './e2e-suite.ts';
import { BOB, mailAccountBody } from './mail-fixture.ts';

/** APPENDs a message with this subject to BOB's INBOX. */
export function deliverMail(dovecot: DovecotServer, subject: string) {
  return dovecot.appendMessage(
    BOB.user,
    'INBOX',
    `Subject: ${subject}\r\nFrom: a@example.test\r\n\r\nwake\r\n`,
  );
}

/** A counter on the gateway's /metrics with each of `labels` (`kind="mail"`), 0 when absent. */
export async function counterValue(gw: Gateway, name: string, ...labels: string[]): Promise<number> {
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  const each = labels.map((l) => `(?=[^}]*${l})`).join('');
  const m = new RegExp(`^${name}\\{${each}[^}]*\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** mmgw_wakeups_total{channel,result} on the gateway's /metrics (0 when absent). */
export function wakeupCount(gw: Gateway, channel: string, result: string): Promise<number> {
  return counterValue(gw, 'mmgw_wakeups_total', `channel="${channel}"`, `result="${result}"`);
}

/** The peers of the Web Push suites: Dovecot with BOB, the SMTP peer, the push service, Prosody with alice and bob. */
export interface WakePeers {
  dovecot: DovecotServer;
  smtp: SmtpPeer;
  push: PushService;
  prosody: ProsodyServer;
}

/** Starts them in `into` (so that a failed start still stops what started); Dovecot with `mailUsers`. */
export async function startWakePeers(
  into: Partial<WakePeers>,
  mailUsers: { user: string; password: string }[] = [BOB],
): Promise<WakePeers> {
  const dovecot = (into.dovecot = await startDovecot({ users: mailUsers }));
  into.smtp = await startSmtpPeer({ dovecot });
  into.push = await startPushService();
  into.prosody = await startProsody({
    domain: 'example.test',
    users: [
      { user: 'alice', password: 'alice-pw' },
      { user: 'bob', password: 'bob-pw' },
    ],
  });
  return into as WakePeers;
}

/** Stops what startWakePeers started, in the reverse order. */
export async function stopWakePeers(peers: Partial<WakePeers>): Promise<void> {
  await peers.push?.stop();
  await peers.prosody?.stop();
  await peers.smtp?.stop();
  await peers.dovecot?.stop({ removeDir: true });
}

/** Adds service profiles for mail and chat, each with the base policies and its own; through the admin API. */
export async function addWakeProfiles(api: ApiClient, policies: Record<string, Record<string, unknown>>) {
  const base = { maxAttachmentBytes: 0, bodyTruncateBytes: 0, imageQuality: 80 };
  for (const [id, own] of Object.entries(policies)) {
    const profile = { id, name: id, services: ['mail', 'im'], accounts: [], policies: { ...base, ...own } };
    const r = await api.call('POST', '/service-profiles', profile);
    assert.equal(r.status, 201, r.text);
  }
}

/** The handset logs in to Prosody as bob. */
export function imLoginBob(h: Handset, prosody: ProsodyServer) {
  return h.request<any>('im.login', {
    jid: prosody.jid('bob'),
    password: 'bob-pw',
    host: prosody.host,
    port: prosody.c2sPort,
  });
}

/** Runs `fn` with alice signed in to Prosody (resource `resource`), able to send bob chat messages; signs her out. */
export async function asAlice<T>(
  prosody: ProsodyServer,
  resource: string,
  fn: (sendBob: (id: string, body: string) => Promise<void>) => Promise<T>,
): Promise<T> {
  const alice = await plainXmppClient({
    port: prosody.c2sPort,
    domain: prosody.domain,
    user: 'alice',
    password: 'alice-pw',
    resource,
  });
  try {
    return await fn((id, body) =>
      alice.send(xml('message', { to: prosody.jid('bob'), type: 'chat', id }, xml('body', {}, body))),
    );
  } finally {
    await alice.stop().catch(() => {});
  }
}

/** A connected handset of `dev`, kept in `open` for the suite's after() to close. */
export async function connectKept(gw: Gateway, dev: { imei: string; secret: string }, open: Handset[]) {
  const h = handsetFor(gw, dev);
  open.push(h);
  await h.connect();
  return h;
}

/**
 * A gateway trusting `caFile` (the push services' CA), coalescing over `intervalMs`, with the suites'
 * admin; `more`: a data directory of the caller's, more environment.
 */
export function startWakeGateway(
  caFile: string,
  intervalMs: number,
  args: string[] = [],
  more: { dataDir?: string; env?: Record<string, string> } = {},
): Promise<Gateway> {
  return startGateway({
    args,
    ...(more.dataDir ? { dataDir: more.dataDir } : {}),
    env: {
      NODE_EXTRA_CA_CERTS: caFile,
      MMGW_PUSH_INTERVAL_MS: String(intervalMs),
      MMGW_ADMIN_NAME: ADMIN.name,
      MMGW_ADMIN_PASSWORD: ADMIN.password,
      ...more.env,
    },
  });
}

/** BOB's mail account on the handset, synced: its id and the INBOX cursor. */
export async function addSyncedMail(h: Handset, dovecot: DovecotServer, smtp: SmtpPeer) {
  const account = ((await h.request<any>('mail.account.add', mailAccountBody(dovecot, smtp, BOB))) as any)
    .account as string;
  const cursor = (await h.request<any>('mail.sync', { account, folder: 'INBOX', limit: 50 }))
    .cursor as string;
  return { account, cursor };
}

/** Closes the suite's handsets, then stops the gateway and the peers, in that order. */
export async function stopAll(open: Handset[], ...stops: (() => Promise<unknown> | undefined)[]) {
  for (const h of open) await h.close().catch(() => {});
  for (const stop of stops) await stop();
}
