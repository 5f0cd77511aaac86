/**
 * `mmgw handset --json` speaks the mail vocabulary of issue 3 against a real
 * gateway, Dovecot and SMTP peer: mail.account.add → mail.account.added,
 * mail.sync → mail.headers, mail.body → mail.body, mail.send → mail.sent,
 * pushed mail.new, and errors as {"event":"error","code":…}.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CliHandset } from '../harness/cli-handset.ts';
import { type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import { type Gateway, provisionDevice, startGateway } from '../harness/gateway.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { ALICE, BOB } from './mail-fixture.ts';

let dovecot: DovecotServer;
let smtp: SmtpPeer;
let gw: Gateway;
const handsets: CliHandset[] = [];

before(async () => {
  dovecot = await startDovecot({ users: [ALICE, BOB] });
  smtp = await startSmtpPeer({ dovecot });
  gw = await startGateway();
});
after(async () => {
  for (const h of handsets) await h.quit().catch(() => {});
  await gw?.stop();
  await smtp?.stop();
  await dovecot?.stop({ removeDir: true });
});

test('mmgw handset --json: the mail vocabulary of issue 3, end to end', async () => {
  const a = CliHandset.json(gw.url, await provisionDevice(gw.dataDir));
  const b = CliHandset.json(gw.url, await provisionDevice(gw.dataDir));
  handsets.push(a, b);
  const add = (u: typeof ALICE, password = u.password) => ({
    cmd: 'mail.account.add',
    address: u.user,
    imap: { host: dovecot.host, port: dovecot.imapPort, tls: 'none', user: u.user, password },
    smtp: { host: smtp.host, port: smtp.port, tls: 'none', user: u.user, password },
  });

  const refused = await a.ask({ id: 'bad', ...add(ALICE, 'nope') });
  assert.equal(refused.event, 'error');
  assert.equal(refused.code, 'mail.auth_failed');

  const added = await a.ask({ id: '1', ...add(ALICE) });
  assert.equal(added.event, 'mail.account.added');
  assert.match(added.account, /^m[0-9a-f]+$/);
  const alice = added.account as string;
  const bob = (await b.ask({ id: '1', ...add(BOB) })).account as string;

  const empty = await b.ask({ id: '2', cmd: 'mail.sync', account: bob, folder: 'INBOX', limit: 50 });
  assert.equal(empty.event, 'mail.headers');
  assert.deepEqual(empty.items, []);
  assert.equal(typeof empty.cursor, 'string');

  const sent = await a.ask({
    id: '4',
    cmd: 'mail.send',
    account: alice,
    to: [BOB.user],
    subject: 'from the CLI',
    text: 'JSON lines all the way',
    clientId: 'c-1',
  });
  assert.equal(sent.event, 'mail.sent');
  assert.equal(sent.clientId, 'c-1');

  const pushed = await b.next('mail.new', (l) => l.event === 'mail.new');
  assert.equal(pushed.id, undefined);
  assert.equal(pushed.account, bob);
  assert.equal(pushed.folder, 'INBOX');
  assert.equal(pushed.header.subject, 'from the CLI');
  assert.equal(pushed.header.from.address, ALICE.user);

  const headers = await b.ask({ id: '5', cmd: 'mail.sync', account: bob, folder: 'INBOX', limit: 50 });
  assert.equal(headers.items.length, 1);
  const item = headers.items[0];
  for (const key of ['uid', 'from', 'subject', 'date', 'size', 'flags', 'attachments', 'preview']) {
    assert.ok(key in item, `header has ${key}`);
  }

  const body = await b.ask({ id: '3', cmd: 'mail.body', account: bob, folder: 'INBOX', uid: item.uid });
  assert.equal(body.event, 'mail.body');
  assert.equal(body.text.trim(), 'JSON lines all the way');
  assert.ok('more' in body && Array.isArray(body.attachments));

  const unknown = await b.ask({ id: '6', cmd: 'mail.body', account: 'm0000', folder: 'INBOX', uid: 1 });
  assert.equal(unknown.event, 'error');
  assert.equal(unknown.code, 'mail.not_found');

  assert.equal(await a.quit(), 0);
  assert.equal(await b.quit(), 0);
});
