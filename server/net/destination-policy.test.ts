import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import {
  allowListFrom,
  DestinationPolicy,
  embeddedIPv4,
  isSpecialAddress,
  type ResolvedAddress,
  type Resolver,
} from './destination-policy.ts';

/** A resolver that answers from a table, and counts how often it was asked. */
function table(entries: Record<string, ResolvedAddress[]>): Resolver & { asked: string[] } {
  const asked: string[] = [];
  const resolve = async (host: string) => {
    asked.push(host);
    const found = entries[host];
    if (found === undefined)
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return found;
  };
  return Object.assign(resolve, { asked });
}

const v4 = (address: string): ResolvedAddress => ({ address, family: 4 });
const v6 = (address: string): ResolvedAddress => ({ address, family: 6 });

async function refused(p: Promise<unknown>, field: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof GatewayError);
    assert.equal(err.code, 'policy.destination_not_allowed');
    assert.equal(err.field, field);
    return true;
  });
}

describe('special addresses', () => {
  test('IPv4: loopback, private, link-local, CGNAT, multicast, unspecified, reserved are special', () => {
    for (const a of [
      '127.0.0.1',
      '127.255.255.254',
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '100.127.255.255',
      '224.0.0.251',
      '239.255.255.250',
      '0.0.0.0',
      '255.255.255.255',
      '198.18.0.1',
    ]) {
      assert.equal(isSpecialAddress(a), true, a);
    }
  });

  test('IPv4: public addresses next to the special ranges are not special', () => {
    for (const a of [
      '8.8.8.8',
      '172.15.255.255',
      '172.32.0.0',
      '100.63.255.255',
      '100.128.0.0',
      '11.0.0.1',
    ]) {
      assert.equal(isSpecialAddress(a), false, a);
    }
  });

  test('IPv6: loopback, unspecified, unique local, link-local, multicast are special; global is not', () => {
    for (const a of [
      '::1',
      '::',
      'fd12:3456::1',
      'fc00::1',
      'fe80::1',
      'fe80::1%eth0',
      'ff02::1',
      '2001:db8::1',
    ]) {
      assert.equal(isSpecialAddress(a), true, a);
    }
    for (const a of ['2001:4860:4860::8888', '2a00:1450:4001:81b::200e']) {
      assert.equal(isSpecialAddress(a), false, a);
    }
  });

  test('IPv6 forms that embed an IPv4 address are judged by that address', () => {
    assert.equal(embeddedIPv4('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(embeddedIPv4('::ffff:7f00:1'), '127.0.0.1');
    assert.equal(embeddedIPv4('64:ff9b::a9fe:a9fe'), '169.254.169.254');
    assert.equal(embeddedIPv4('2002:0a00:0001::1'), '10.0.0.1');
    assert.equal(embeddedIPv4('::10.0.0.1'), '10.0.0.1');
    assert.equal(embeddedIPv4('2001:4860:4860::8888'), undefined);
    for (const a of ['::ffff:127.0.0.1', '::ffff:10.0.0.1', '64:ff9b::a9fe:a9fe', '2002:c0a8:0101::1']) {
      assert.equal(isSpecialAddress(a), true, a);
    }
    assert.equal(isSpecialAddress('::ffff:8.8.8.8'), false);
    assert.equal(isSpecialAddress('64:ff9b::808:808'), false);
  });

  test('anything that is not an address is special (never connected to)', () => {
    assert.equal(isSpecialAddress('localhost'), true);
    assert.equal(isSpecialAddress(''), true);
  });
});

describe('DestinationPolicy.check', () => {
  test('a public host on a service port is allowed and pinned to the checked address', async () => {
    const resolve = table({ 'imap.example.com': [v4('93.184.216.34')] });
    const policy = new DestinationPolicy({ resolve });
    const d = await policy.check('mail', 'IMAP.Example.com.', 993);
    assert.deepEqual(d, { host: 'imap.example.com', address: '93.184.216.34', family: 4, port: 993 });
  });

  test('loopback, private and metadata addresses are refused, as literals and through DNS', async () => {
    const resolve = table({
      'evil.example': [v4('127.0.0.1')],
      'metadata.example': [v4('169.254.169.254')],
      'intranet.example': [v6('fd00::25')],
      'mapped.example': [v6('::ffff:10.0.0.5')],
    });
    const policy = new DestinationPolicy({ resolve });
    for (const host of ['127.0.0.1', '[::1]', '10.0.0.1', '169.254.169.254', '::ffff:127.0.0.1']) {
      await refused(policy.check('mail', host, 143), 'host');
    }
    for (const host of ['evil.example', 'metadata.example', 'intranet.example', 'mapped.example']) {
      await refused(policy.check('im', host, 5222), 'host');
    }
  });

  test('a name resolving to a private and a public address is pinned to the public one', async () => {
    const resolve = table({ 'mixed.example': [v4('10.0.0.7'), v4('93.184.216.34')] });
    const d = await new DestinationPolicy({ resolve }).check('mail', 'mixed.example', 587);
    assert.equal(d.address, '93.184.216.34');
  });

  test('DNS rebinding: the connection address is the one resolved at check time, however DNS answers later', async () => {
    let answer = v4('93.184.216.34');
    const resolve: Resolver = async () => [answer];
    const policy = new DestinationPolicy({ resolve });
    const pinned = await policy.check('im', 'rebind.example', 5222);
    answer = v4('127.0.0.1');
    assert.equal(pinned.address, '93.184.216.34');
    await refused(policy.check('im', 'rebind.example', 5222), 'host');
  });

  test('ports outside the service are refused unless the operator adds them', async () => {
    const resolve = table({ 'mail.example': [v4('93.184.216.34')] });
    await refused(new DestinationPolicy({ resolve }).check('mail', 'mail.example', 22), 'port');
    await refused(new DestinationPolicy({ resolve }).check('mail', 'mail.example', 5222), 'port');
    await refused(new DestinationPolicy({ resolve }).check('im', 'mail.example', 0), 'port');
    const opened = new DestinationPolicy({ resolve, extraPorts: [2525] });
    assert.equal((await opened.check('mail', 'mail.example', 2525)).port, 2525);
  });

  test('allowDestinations opens CIDRs (v4 and v6) and host names, on any port', async () => {
    const resolve = table({
      'dovecot.corp': [v4('10.1.2.3')],
      'xmpp.corp.example': [v4('192.168.5.5')],
      'other.corp': [v4('10.9.0.1')],
    });
    const policy = new DestinationPolicy({
      resolve,
      allow: ['127.0.0.0/8', '10.1.0.0/16', 'fd00::/8', '*.corp.example', 'localhost'],
    });
    assert.equal((await policy.check('mail', '127.0.0.1', 31143)).allowedBy, '127.0.0.0/8');
    assert.equal((await policy.check('mail', '::ffff:127.0.0.1', 31143)).address, '::ffff:127.0.0.1');
    assert.equal((await policy.check('mail', 'dovecot.corp', 10143)).address, '10.1.2.3');
    assert.equal((await policy.check('im', 'fd00::5', 5222)).allowedBy, 'fd00::/8');
    assert.equal((await policy.check('im', 'xmpp.corp.example', 15222)).allowedBy, '*.corp.example');
    await refused(policy.check('mail', 'other.corp', 143), 'host');
    await refused(policy.check('mail', '::1', 143), 'host');
  });

  test('an unknown host fails with the resolver error (the caller maps it), not the policy code', async () => {
    const policy = new DestinationPolicy({ resolve: table({}) });
    await assert.rejects(policy.check('mail', 'nowhere.example', 993), /ENOTFOUND/);
  });

  test('bad allow entries are refused at construction, naming the entry', () => {
    assert.throws(() => new DestinationPolicy({ allow: ['10.0.0.0/33'] }), /10\.0\.0\.0\/33/);
    assert.throws(() => new DestinationPolicy({ allow: ['not a host'] }), /not a host/);
    assert.throws(() => new DestinationPolicy({ allow: ['example.com/8'] }), /example\.com\/8/);
  });

  test('allowListFrom merges the config list and the comma-separated environment', () => {
    assert.deepEqual(allowListFrom(['10.0.0.0/8'], ' 127.0.0.1 ,, ::1'), ['10.0.0.0/8', '127.0.0.1', '::1']);
    assert.deepEqual(allowListFrom(undefined, undefined), []);
  });
});
