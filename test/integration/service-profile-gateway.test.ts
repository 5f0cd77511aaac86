/**
 * Service profiles applied at the transport, through a real gateway process
 * (every role, in-process bus) against a private Dovecot, the SMTP peer and
 * Prosody, with the profile and devices set up through the admin REST API:
 * presets listed and used by label (mail.account.add / im.login with only
 * the credentials); a wrong label is service.unknown_preset; a service the
 * profile leaves out is service.not_allowed; maxAttachmentBytes and
 * bodyTruncateBytes apply to mail.attachment and mail.body; an account the
 * operator provisioned comes up by itself when the device connects (no
 * mail.account.add, no im.login), again after a gateway restart, and goes
 * away when the operator removes it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Handset } from '../../device-protocol/handset.ts';
import { eventually } from '../../testing/index.ts';
import { type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import { type Gateway, runMmgw, startGateway } from '../harness/gateway.ts';
import { type ProsodyServer, startProsody } from '../harness/prosody.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { ADMIN, ApiClient, addProfiledDevice, assertError } from './admin-api-helpers.ts';
import { handsetFor, WAIT } from './e2e-suite.ts';
import { ALICE, BOB } from './mail-fixture.ts';

interface Pushed {
  name: string;
  body: any;
}

const MAIL_PRESET = 'Corp mail';
const CHAT_PRESET = 'Corp chat';
const MAX_ATTACHMENT = 2000;
const BODY_TRUNCATE = 300;

/** The device protocol's error frame carries code and message (not the field). */
const rejectsWith = (p: Promise<unknown>, code: string) =>
  assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof GatewayError, String(err));
    assert.equal(err.code, code, err.message);
    return true;
  });

function messageWithAttachments(to: string): string {
  const small = Buffer.alloc(500, 'a').toString('base64');
  const big = Buffer.alloc(5000, 'b').toString('base64');
  return [
    'From: Bob <bob@example.test>',
    `To: ${to}`,
    'Subject: policies',
    'Message-ID: <policies-1@example.test>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'x'.repeat(1000),
    '--b1',
    'Content-Type: application/octet-stream; name="small.bin"',
    'Content-Disposition: attachment; filename="small.bin"',
    'Content-Transfer-Encoding: base64',
    '',
    small,
    '--b1',
    'Content-Type: application/octet-stream; name="big.bin"',
    'Content-Disposition: attachment; filename="big.bin"',
    'Content-Transfer-Encoding: base64',
    '',
    big,
    '--b1--',
    '',
  ].join('\r\n');
}

describe('service profiles through the gateway', { timeout: 300_000 }, () => {
  let dovecot: DovecotServer;
  let smtp: SmtpPeer;
  let prosody: ProsodyServer;
  let dataDir: string;
  let gw: Gateway;
  let api: ApiClient;
  const open: Handset[] = [];
  let devices: Record<'a' | 'm' | 'p', { imei: string; secret: string }>;

  const start = () =>
    startGateway({
      dataDir,
      args: ['--config', join(dataDir, 'gw.json')],
      env: {
        MMGW_ADMIN_NAME: ADMIN.name,
        MMGW_ADMIN_PASSWORD: ADMIN.password,
        MMGW_IM_LINGER_MS: '1500',
      },
    });
  const connect = async (dev: { imei: string; secret: string }, events?: Pushed[]) => {
    const h = handsetFor(gw, dev);
    if (events) h.on('event', (e) => events.push({ name: e.name, body: e.body }));
    open.push(h);
    await h.connect();
    return h;
  };
  const addDevice = (profile: string) => addProfiledDevice(api, 'op1', profile);

  before(async () => {
    dovecot = await startDovecot({ users: [ALICE, BOB] });
    smtp = await startSmtpPeer({ dovecot });
    prosody = await startProsody({
      domain: 'example.test',
      users: [
        { user: 'alice', password: ALICE.password },
        { user: 'bob', password: BOB.password },
      ],
    });
    dataDir = mkdtempSync(join(tmpdir(), 'mmgw-svc-profile-'));
    writeFileSync(join(dataDir, 'gw.json'), JSON.stringify({ edge: { resumeWindowMs: 1500 } }));
    gw = await start();
    api = await ApiClient.as(gw.adminUrl, ADMIN.name, ADMIN.password);
    assert.equal((await api.call('POST', '/operators', { id: 'op1', name: 'Operator 1' })).status, 201);
    const presets = [
      {
        service: 'mail',
        label: MAIL_PRESET,
        imapHost: dovecot.host,
        imapPort: dovecot.imapPort,
        smtpHost: smtp.host,
        smtpPort: smtp.port,
        tls: false,
      },
      {
        service: 'im',
        label: CHAT_PRESET,
        xmppDomain: 'example.test',
        xmppHost: prosody.host,
        xmppPort: prosody.c2sPort,
      },
    ];
    const policies = {
      maxAttachmentBytes: MAX_ATTACHMENT,
      bodyTruncateBytes: BODY_TRUNCATE,
      imageQuality: 60,
    };
    for (const [id, services] of [
      ['full', ['mail', 'im']],
      ['mail-only', ['mail']],
    ] as const) {
      const r = await api.call('POST', '/service-profiles', {
        id,
        name: id,
        services,
        accounts: presets,
        policies,
      });
      assert.equal(r.status, 201, r.text);
    }
    devices = {
      a: await addDevice('full'),
      m: await addDevice('mail-only'),
      p: await addDevice('full'),
    };
  });
  after(async () => {
    for (const h of open) await h.close().catch(() => {});
    await gw?.stop();
    await prosody?.stop();
    await smtp?.stop();
    await dovecot?.stop({ removeDir: true });
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('a preset label twice in one service profile is refused', async () => {
    const preset = { service: 'im', label: 'Twice', xmppDomain: 'example.test' };
    const r = await api.call('POST', '/service-profiles', {
      id: 'twice',
      name: 'twice',
      services: ['im'],
      accounts: [preset, preset],
      policies: { maxAttachmentBytes: 0, bodyTruncateBytes: 0, imageQuality: 50 },
    });
    assertError(r, 400, 'api.bad_input', 'accounts');
  });

  let aliceMail: string;

  test('the handset lists the presets and adds accounts by label with only its credentials', async () => {
    const a = await connect(devices.a);
    const mailPresets = await a.request<any>('mail.presets');
    assert.deepEqual(mailPresets.presets, [
      {
        label: MAIL_PRESET,
        imap: { host: dovecot.host, port: dovecot.imapPort, tls: 'none' },
        smtp: { host: smtp.host, port: smtp.port, tls: 'none' },
      },
    ]);
    const imPresets = await a.request<any>('im.presets');
    assert.deepEqual(imPresets.presets, [
      { label: CHAT_PRESET, domain: 'example.test', host: prosody.host, port: prosody.c2sPort },
    ]);

    const added = await a.request<any>('mail.account.add', {
      preset: MAIL_PRESET,
      address: ALICE.user,
      password: ALICE.password,
    });
    assert.equal(added.preset, MAIL_PRESET);
    aliceMail = added.account;
    const list = await a.request<any>('mail.accounts');
    assert.deepEqual(
      list.accounts.map((x: any) => [x.account, x.preset]),
      [[aliceMail, MAIL_PRESET]],
    );
    const folders = await a.request<any>('mail.folders', { account: aliceMail });
    assert.ok(folders.folders.some((f: any) => f.path === 'INBOX'));

    const online = await a.request<any>('im.login', {
      preset: CHAT_PRESET,
      jid: prosody.jid('alice'),
      password: ALICE.password,
    });
    assert.equal(online.state, 'online');
    assert.equal(online.preset, CHAT_PRESET);
  });

  test('a wrong preset label is service.unknown_preset; wrong credentials the usual auth error', async () => {
    const a = open[0];
    assert.ok(a, 'the handset of the test before is still open');
    await rejectsWith(
      a.request('mail.account.add', { preset: 'Nope', address: ALICE.user, password: ALICE.password }),
      'service.unknown_preset',
    );
    // A chat preset's label is not a mail preset.
    await rejectsWith(
      a.request('mail.account.add', { preset: CHAT_PRESET, address: ALICE.user, password: ALICE.password }),
      'service.unknown_preset',
    );
    await rejectsWith(
      a.request('im.login', { preset: 'Nope', jid: prosody.jid('alice'), password: ALICE.password }),
      'service.unknown_preset',
    );
    await rejectsWith(
      a.request('im.login', { preset: CHAT_PRESET, jid: 'alice@elsewhere.test', password: ALICE.password }),
      'request.bad_input',
    );
    await rejectsWith(
      a.request('mail.account.add', { preset: MAIL_PRESET, address: ALICE.user, password: 'wrong' }),
      'mail.auth_failed',
    );
  });

  test('a service the profile leaves out is service.not_allowed', async () => {
    const m = await connect(devices.m);
    await rejectsWith(
      m.request('im.login', { preset: CHAT_PRESET, jid: prosody.jid('bob'), password: BOB.password }),
      'service.not_allowed',
    );
    await rejectsWith(m.request('im.accounts'), 'service.not_allowed');
    await rejectsWith(m.request('im.presets'), 'service.not_allowed');
    const list = await m.request<any>('mail.accounts');
    assert.deepEqual(list.accounts, []);
    const presets = await m.request<any>('mail.presets');
    assert.equal(presets.presets.length, 1);
  });

  test('maxAttachmentBytes and bodyTruncateBytes apply to mail.attachment and mail.body', async () => {
    const a = open[0];
    assert.ok(a, 'the handset of the first test is still open');
    const uid = await dovecot.appendMessage(ALICE.user, 'INBOX', messageWithAttachments(ALICE.user));
    const body = await a.request<any>('mail.body', {
      account: aliceMail,
      folder: 'INBOX',
      uid,
      maxBytes: 4096,
    });
    assert.equal(Buffer.byteLength(body.text), BODY_TRUNCATE, 'the policy caps what maxBytes asked for');
    assert.equal(body.more, BODY_TRUNCATE);
    const small = body.attachments.find((x: any) => x.name === 'small.bin');
    const big = body.attachments.find((x: any) => x.name === 'big.bin');
    assert.equal(small.error, undefined);
    assert.equal(big.error, 'policy.attachment_too_large');

    const chunk = await a.request<any>('mail.attachment', {
      account: aliceMail,
      folder: 'INBOX',
      uid,
      part: small.part,
    });
    assert.equal(chunk.data.byteLength, 500);
    assert.equal(chunk.done, true);
    await rejectsWith(
      a.request('mail.attachment', { account: aliceMail, folder: 'INBOX', uid, part: big.part }),
      'policy.attachment_too_large',
    );
  });

  test('operator-provisioned accounts: set through the API, never shown, audited without the password', async () => {
    const base = `/devices/${devices.p.imei}/accounts`;
    const secret = 'bob-pw';
    assertError(
      await api.call('PUT', `${base}/Nope`, { address: BOB.user, password: secret }),
      400,
      'service.unknown_preset',
      'label',
    );
    assertError(
      await api.call('PUT', `${base}/${encodeURIComponent(MAIL_PRESET)}`, { password: secret }),
      400,
      'registry.invalid_field',
      'address',
    );
    const mail = await api.call('PUT', `${base}/${encodeURIComponent(MAIL_PRESET)}`, {
      address: BOB.user,
      password: secret,
    });
    assert.equal(mail.status, 201, mail.text);
    const chat = await api.call('PUT', `${base}/${encodeURIComponent(CHAT_PRESET)}`, {
      jid: prosody.jid('bob'),
      password: secret,
    });
    assert.equal(chat.status, 201, chat.text);
    const list = await api.call('GET', base);
    assert.equal(list.status, 200);
    assert.deepEqual(list.json.items.map((x: any) => [x.label, x.service, x.user]).sort(), [
      [CHAT_PRESET, 'im', prosody.jid('bob')],
      [MAIL_PRESET, 'mail', BOB.user],
    ]);
    assert.ok(!list.text.includes(secret) && !list.text.includes('secret'), list.text);
    const audit = await api.call('GET', '/audit?action=device.account.create');
    assert.equal(audit.json.items.length, 2, audit.text);
    assert.ok(!audit.text.includes(secret) && !audit.text.includes('mmgwc1'), audit.text);
  });

  let bobMail: string;
  let bobChat: string;

  test('a provisioned device gets its accounts on connect, without mail.account.add or im.login', async () => {
    const events: Pushed[] = [];
    const p = await connect(devices.p, events);
    await eventually('mail.account.added', () => events.some((e) => e.name === 'mail.account.added'), WAIT);
    await eventually('im.online', () => events.some((e) => e.name === 'im.online'), WAIT);
    const added = events.find((e) => e.name === 'mail.account.added')!.body;
    assert.equal(added.address, BOB.user);
    assert.equal(added.preset, MAIL_PRESET);
    assert.equal(added.provisioned, true);
    assert.equal(added.state, 'online');
    bobMail = added.account;
    const online = events.find((e) => e.name === 'im.online')!.body;
    assert.equal(online.jid, prosody.jid('bob'));
    assert.equal(online.preset, CHAT_PRESET);
    assert.equal(online.provisioned, true);
    bobChat = online.account;

    const mailList = await p.request<any>('mail.accounts');
    assert.deepEqual(
      mailList.accounts.map((x: any) => [x.account, x.preset, x.provisioned, x.state]),
      [[bobMail, MAIL_PRESET, true, 'online']],
    );
    const sync = await p.request<any>('mail.sync', { account: bobMail, folder: 'INBOX', limit: 10 });
    assert.ok(Array.isArray(sync.items));
    const chatList = await p.request<any>('im.accounts');
    assert.deepEqual(
      chatList.accounts.map((x: any) => [x.account, x.preset, x.provisioned, x.state]),
      [[bobChat, CHAT_PRESET, true, 'online']],
    );
  });

  test('after a gateway restart the provisioned accounts come back by themselves on connect', async () => {
    for (const h of open.splice(0)) await h.close();
    await gw.stop();
    gw = await start();
    api = await ApiClient.as(gw.adminUrl, ADMIN.name, ADMIN.password);
    const events: Pushed[] = [];
    const p = await connect(devices.p, events);
    await eventually(
      'mail.account.state online',
      () =>
        events.some(
          (e) => e.name === 'mail.account.state' && e.body.account === bobMail && e.body.state === 'online',
        ),
      WAIT,
    );
    const state = events.find((e) => e.name === 'mail.account.state' && e.body.state === 'online')!.body;
    assert.equal(state.preset, MAIL_PRESET);
    // Unchanged accounts are not announced as added again.
    assert.ok(!events.some((e) => e.name === 'mail.account.added' || e.name === 'im.online'));
    // Restored in the background since the node started; the device asks until it is up.
    const chat = await eventually(
      'the chat account online',
      async () => {
        const r = await p.request<any>('im.accounts');
        const chat = r.accounts.find((x: any) => x.account === bobChat);
        if (chat?.state !== 'online') throw new Error(`chat account still ${chat?.state}`);
        return chat;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    assert.equal(chat.preset, CHAT_PRESET);
  });

  test('the CLI provisions an account with the key the transport opens it with', async () => {
    const m = devices.m;
    const refused = await runMmgw(
      [
        'device',
        'account',
        'set',
        m.imei,
        CHAT_PRESET,
        '--jid',
        prosody.jid('alice'),
        '--password-stdin',
        '--data',
        dataDir,
        '--json',
      ],
      { input: `${ALICE.password}\n` },
    );
    assert.notEqual(refused.code, 0);
    assert.match(refused.stdout + refused.stderr, /service\.not_allowed/);
    const set = await runMmgw(
      [
        'device',
        'account',
        'set',
        m.imei,
        MAIL_PRESET,
        '--address',
        ALICE.user,
        '--password-stdin',
        '--data',
        dataDir,
        '--json',
      ],
      { input: `${ALICE.password}\n` },
    );
    assert.equal(set.code, 0, set.stderr);
    assert.equal(JSON.parse(set.stdout).account.user, ALICE.user);
    const list = await runMmgw(['device', 'account', 'list', m.imei, '--data', dataDir, '--json']);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(
      JSON.parse(list.stdout).accounts.map((a: any) => [a.label, a.service, a.secret]),
      [[MAIL_PRESET, 'mail', undefined]],
    );
    for (const h of open.splice(0)) await h.close();
    const events: Pushed[] = [];
    await connect(m, events);
    await eventually('mail.account.added', () => events.some((e) => e.name === 'mail.account.added'), WAIT);
    assert.equal(events.find((e) => e.name === 'mail.account.added')!.body.state, 'online');
  });

  test('an account the operator removes is removed from the device at its next connect', async () => {
    const r = await api.call(
      'DELETE',
      `/devices/${devices.p.imei}/accounts/${encodeURIComponent(MAIL_PRESET)}`,
    );
    assert.equal(r.status, 204, r.text);
    for (const h of open.splice(0)) await h.close();
    const events: Pushed[] = [];
    const p = await connect(devices.p, events);
    await eventually(
      'mail.account.removed',
      () => events.some((e) => e.name === 'mail.account.removed'),
      WAIT,
    );
    assert.deepEqual(events.find((e) => e.name === 'mail.account.removed')!.body, {
      account: bobMail,
      preset: MAIL_PRESET,
      provisioned: true,
    });
    const list = await p.request<any>('mail.accounts');
    assert.deepEqual(list.accounts, []);
    const chat = await p.request<any>('im.accounts');
    assert.deepEqual(
      chat.accounts.map((x: any) => x.account),
      [bobChat],
    );
  });
});
