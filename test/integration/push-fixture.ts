/** What the wake-up suites share: mail into the sleeping device's INBOX, the wake-up counters, handsets closed at the end. */
import type { Handset } from '../../device-protocol/handset.ts';
import type { DovecotServer } from '../harness/dovecot.ts';
import { type Gateway, startGateway } from '../harness/gateway.ts';
import type { SmtpPeer } from '../harness/smtp-peer.ts';
import { ADMIN } from './admin-api-helpers.ts';
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

/** mmgw_wakeups_total{channel,result} on the gateway's /metrics (0 when absent). */
export async function wakeupCount(gw: Gateway, channel: string, result: string): Promise<number> {
  const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
  const m = new RegExp(
    `^mmgw_wakeups_total\\{[^}]*channel="${channel}"[^}]*result="${result}"[^}]*\\} (\\d+)$`,
    'm',
  ).exec(text);
  return m ? Number(m[1]) : 0;
}

/** A connected handset of `dev`, kept in `open` for the suite's after() to close. */
export async function connectKept(gw: Gateway, dev: { imei: string; secret: string }, open: Handset[]) {
  const h = handsetFor(gw, dev);
  open.push(h);
  await h.connect();
  return h;
}

/** A gateway trusting `caFile` (the push services' CA), coalescing over `intervalMs`, with the suites' admin. */
export function startWakeGateway(caFile: string, intervalMs: number, args: string[] = []): Promise<Gateway> {
  return startGateway({
    args,
    env: {
      NODE_EXTRA_CA_CERTS: caFile,
      MMGW_PUSH_INTERVAL_MS: String(intervalMs),
      MMGW_ADMIN_NAME: ADMIN.name,
      MMGW_ADMIN_PASSWORD: ADMIN.password,
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
