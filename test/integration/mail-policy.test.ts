/**
 * The outbound policy on mail (issue #11, SSRF): without an allow list,
 * mail.account.add to loopback, private, link-local and IPv4-mapped
 * addresses, and to a name that resolves to loopback, is refused with
 * policy.destination_not_allowed before anything is connected (a listening
 * server sees no connection), at once and alike for open and closed ports;
 * an allowed name is connected at the address that was checked (DNS
 * rebinding cannot move it).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import { DestinationPolicy, type Resolver } from '../../server/net/destination-policy.ts';
import { freePort } from '../harness/dovecot.ts';
import { type HostilePeer, startHostileImap, startHostileSmtp } from '../harness/hostile/index.ts';
import { ALICE, BOB, type MailFixture, startMailFixture } from './mail-fixture.ts';

/** Refusal is a check before any socket: far below any connect or greeting timeout. */
const IMMEDIATE_MS = 1000;

describe('mail under the default outbound policy', () => {
  let fx: MailFixture;
  let v4: HostilePeer;
  let v6: HostilePeer;
  let smtpListener: HostilePeer;

  before(async () => {
    // No allow list: the policy of a gateway started without MMGW_ALLOW_DESTINATIONS.
    fx = await startMailFixture({ serviceOptions: { transport: {} } });
    // Servers that would take a connection on loopback, v4 and v6: they must see none.
    v4 = await startHostileImap('half-open');
    v6 = await startHostileImap('half-open', { ipv6: true });
    smtpListener = await startHostileSmtp('half-open');
  });
  after(async () => {
    await v4?.stop();
    await v6?.stop();
    await smtpListener?.stop();
    await fx?.stop();
  });

  const addTo = (imapHost: string, imapPort: number, smtp = { host: '127.0.0.1', port: smtpListener.port }) =>
    fx.callError('dev-policy', 'mail.account.add', {
      ...fx.accountBody(ALICE),
      imap: { host: imapHost, port: imapPort, tls: 'none', password: ALICE.password },
      smtp: { ...smtp, tls: 'none' },
    });

  const refused = (err: GatewayError, field: string) => {
    assert.ok(err instanceof GatewayError);
    assert.equal(err.code, 'policy.destination_not_allowed');
    assert.equal(err.field, field);
    assert.equal(err.message, "The gateway's outbound policy does not allow connecting to this server.");
  };

  for (const [label, host, peer] of [
    ['127.0.0.1', '127.0.0.1', 'v4'],
    ['10.0.0.1 (private)', '10.0.0.1', undefined],
    ['169.254.169.254 (cloud metadata)', '169.254.169.254', undefined],
    ['[::1]', '[::1]', 'v6'],
    ['::ffff:127.0.0.1 (IPv4-mapped)', '::ffff:127.0.0.1', 'v4'],
    ['localhost (a name that resolves to loopback)', 'localhost', 'v4'],
  ] as const) {
    test(`mail.account.add to ${label} is refused before anything connects`, async () => {
      const port = peer === 'v6' ? v6.port : v4.port;
      const started = performance.now();
      const err = await addTo(host, port);
      const tookMs = performance.now() - started;
      refused(err, 'imap.host');
      assert.ok(tookMs < IMMEDIATE_MS, `refused in ${tookMs.toFixed(0)} ms`);
      assert.equal(v4.connections(), 0, 'nothing reached the IPv4 loopback server');
      assert.equal(v6.connections(), 0, 'nothing reached the IPv6 loopback server');
      assert.equal(smtpListener.connections(), 0, 'the SMTP server was not tried either');
    });
  }

  test('a refusal is the same answer, as fast, for an open and a closed port (no port scan)', async () => {
    const closed = await freePort();
    const times: number[] = [];
    const answers: unknown[] = [];
    for (const port of [v4.port, closed, v4.port, closed]) {
      const started = performance.now();
      const err = await addTo('127.0.0.1', port);
      times.push(performance.now() - started);
      answers.push({ ...err.toJSON(), retryAfterMs: err.retryAfterMs });
    }
    console.log(
      `# refused by policy, open / closed / open / closed port: ${times.map((t) => t.toFixed(1)).join(' / ')} ms`,
    );
    for (const a of answers) assert.deepEqual(a, answers[0]);
    assert.ok(Math.max(...times) < IMMEDIATE_MS, `times ${times.map((t) => t.toFixed(1)).join(', ')} ms`);
    assert.equal(v4.connections(), 0);
  });

  test('an allowed IMAP server does not make a refused SMTP server be tried: both are checked first', async () => {
    const imapOnly = await startMailFixture({
      serviceOptions: { transport: { allowDestinations: [`127.0.0.1/32`] } },
    });
    try {
      const err = await imapOnly.callError('dev-policy', 'mail.account.add', {
        ...imapOnly.accountBody(ALICE),
        imap: { host: '127.0.0.1', port: v4.port, tls: 'none', password: ALICE.password },
        smtp: { host: '10.0.0.1', port: 587, tls: 'none' },
      });
      refused(err, 'smtp.host');
      assert.equal(v4.connections(), 0, 'the allowed IMAP server saw no connection');
    } finally {
      await imapOnly.stop();
    }
  });
});

describe('mail under an allow list with an injected resolver', () => {
  let fx: MailFixture;
  const lookups = new Map<string, number>();
  // A rebinding name: loopback (allowed here) for the first answer, a private address after.
  const resolve: Resolver = async (host) => {
    const n = (lookups.get(host) ?? 0) + 1;
    lookups.set(host, n);
    if (host === 'rebind.test') return [{ address: n === 1 ? '127.0.0.1' : '10.9.9.9', family: 4 }];
    if (host === 'smtp.rebind.test') return [{ address: '127.0.0.1', family: 4 }];
    if (host === 'public.test') return [{ address: '93.184.216.34', family: 4 }];
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  };

  before(async () => {
    fx = await startMailFixture({
      serviceOptions: { policy: new DestinationPolicy({ allow: ['127.0.0.1'], resolve }) },
    });
  });
  after(() => fx?.stop());

  test('the connection goes to the address that was checked: the library never resolves again', async () => {
    const body = fx.accountBody(ALICE) as { imap: object; smtp: object };
    const res = await fx.call('dev-rebind', 'mail.account.add', {
      ...body,
      imap: { ...body.imap, host: 'rebind.test' },
      smtp: { ...body.smtp, host: 'smtp.rebind.test' },
    });
    assert.match(res.account, /^m/);
    assert.equal(lookups.get('rebind.test'), 1, 'one lookup, by the policy; imapflow was given the address');
    // The next connection of the stored account checks again, and the rebound answer is refused.
    const err = await fx.callError('dev-rebind', 'mail.folders', { account: res.account });
    assert.equal(err.code, 'policy.destination_not_allowed');
    assert.equal(err.field, 'imap.host');
  });

  test('a public address on a port that is not a mail port is refused; an unknown name is mail.unreachable', async () => {
    const body = fx.accountBody(ALICE) as { imap: object; smtp: object };
    const port = await fx.callError('dev-ports', 'mail.account.add', {
      ...body,
      imap: { ...body.imap, host: 'public.test', port: 8080 },
    });
    assert.equal(port.code, 'policy.destination_not_allowed');
    assert.equal(port.field, 'imap.port');
    const unknown = await fx.callError('dev-ports', 'mail.account.add', {
      ...body,
      imap: { ...body.imap, host: 'nowhere.test' },
    });
    assert.equal(unknown.code, 'mail.unreachable');
    assert.equal(unknown.field, 'imap.host');
    assert.doesNotMatch(unknown.message, /nowhere|ENOTFOUND/);
  });
});

describe('accounts per device', () => {
  let fx: MailFixture;
  before(async () => {
    fx = await startMailFixture({
      serviceOptions: { transport: { allowDestinations: ['127.0.0.0/8'], maxAccountsPerDevice: 2 } },
    });
  });
  after(() => fx?.stop());

  test('a device at the cap is refused before anything connects; removing one makes room', async () => {
    const first = await fx.addAccount('dev-cap', ALICE);
    await fx.addAccount('dev-cap', BOB);
    const listener = await startHostileImap('half-open');
    try {
      const err = await fx.callError('dev-cap', 'mail.account.add', {
        ...fx.accountBody(ALICE),
        imap: { host: '127.0.0.1', port: listener.port, tls: 'none', password: ALICE.password },
      });
      assert.equal(err.code, 'policy.too_many_accounts');
      assert.equal(listener.connections(), 0);
    } finally {
      await listener.stop();
    }
    // Another device has its own count.
    await fx.addAccount('dev-other', ALICE);
    await fx.call('dev-cap', 'mail.account.remove', { account: first });
    await fx.addAccount('dev-cap', ALICE);
    const list = await fx.call('dev-cap', 'mail.accounts', {});
    assert.equal(list.accounts.length, 2);
  });
});
