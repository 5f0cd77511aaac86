import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import { client } from '@xmpp/client';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import { DestinationPolicy, type ResolvedAddress } from '../../../net/destination-policy.ts';
import {
  checkedDestinations,
  refuseRedirects,
  type SrvRecord,
  type SrvResolver,
  useDomainForTls,
  xmppTargets,
} from './destination.ts';

const notFound = (name: string) =>
  Object.assign(new Error(`querySrv ENOTFOUND ${name}`), { code: 'ENOTFOUND' });

/** SRV answers from a table; names not in it have no records. */
function srv(table: Record<string, SrvRecord[]>): SrvResolver & { asked: string[] } {
  const asked: string[] = [];
  const resolve = async (name: string) => {
    asked.push(name);
    const records = table[name];
    if (records === undefined) throw notFound(name);
    return records;
  };
  return Object.assign(resolve, { asked });
}

const record = (name: string, port: number, priority = 10, weight = 0): SrvRecord => ({
  name,
  port,
  priority,
  weight,
});

function policy(addresses: Record<string, string[]>, allow: string[] = []) {
  const asked: string[] = [];
  const p = new DestinationPolicy({
    allow,
    resolve: async (host) => {
      asked.push(host);
      const found = addresses[host];
      if (found === undefined)
        throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
      return found.map((address): ResolvedAddress => ({ address, family: address.includes(':') ? 6 : 4 }));
    },
  });
  return Object.assign(p, { asked });
}

async function all(opts: Parameters<typeof checkedDestinations>[0]): Promise<string[]> {
  const out: string[] = [];
  for await (const d of checkedDestinations(opts)) out.push(d.service);
  return out;
}

async function refused(p: Promise<unknown>): Promise<void> {
  await assert.rejects(
    p,
    (err: unknown) => err instanceof GatewayError && err.code === 'policy.destination_not_allowed',
  );
}

describe('targets', () => {
  test('an explicit server is the only target (5222 unless told)', async () => {
    const resolveSrv = srv({});
    assert.deepEqual(await xmppTargets({ domain: 'example.com', host: 'xmpp.example.net', resolveSrv }), [
      { host: 'xmpp.example.net', port: 5222, directTls: false },
    ]);
    assert.deepEqual(resolveSrv.asked, []);
  });

  test('SRV records of both kinds, by priority then weight; without any, the domain on 5222', async () => {
    const resolveSrv = srv({
      '_xmpps-client._tcp.example.com': [record('tls.example.com', 5223, 5)],
      '_xmpp-client._tcp.example.com': [
        record('b.example.com', 5222, 10, 1),
        record('a.example.com', 5222, 10, 50),
      ],
    });
    assert.deepEqual(await xmppTargets({ domain: 'example.com', resolveSrv }), [
      { host: 'tls.example.com', port: 5223, directTls: true },
      { host: 'a.example.com', port: 5222, directTls: false },
      { host: 'b.example.com', port: 5222, directTls: false },
    ]);
    assert.deepEqual(await xmppTargets({ domain: 'example.org', resolveSrv }), [
      { host: 'example.org', port: 5222, directTls: false },
    ]);
  });

  test('a "." target says no service; a failing lookup is an error; a long list is cut', async () => {
    await assert.rejects(
      xmppTargets({
        domain: 'example.com',
        resolveSrv: srv({ '_xmpp-client._tcp.example.com': [record('.', 0)] }),
      }),
      (err: unknown) => err instanceof GatewayError && err.code === 'im.unknown_domain',
    );
    const servfail = async () => {
      throw Object.assign(new Error('querySrv ESERVFAIL'), { code: 'ESERVFAIL' });
    };
    await assert.rejects(xmppTargets({ domain: 'example.com', resolveSrv: servfail }), { code: 'ESERVFAIL' });
    const many = Array.from({ length: 50 }, (_, i) => record(`h${i}.example.com`, 5222, i));
    const cut = await xmppTargets({
      domain: 'example.com',
      resolveSrv: srv({ '_xmpp-client._tcp.example.com': many }),
    });
    assert.equal(cut.length, 8);
  });
});

describe('checked destinations', () => {
  test('loopback, private and metadata addresses are refused, by address or by the name resolving to one', async () => {
    const p = policy({ 'intranet.example.com': ['10.1.2.3'], 'meta.example.com': ['169.254.169.254'] });
    for (const host of ['127.0.0.1', '::1', '192.168.1.10', 'intranet.example.com', 'meta.example.com']) {
      await refused(all({ policy: p, domain: 'example.com', host, port: 5222, resolveSrv: srv({}) }));
    }
  });

  test('an SRV target on a private address is refused; the next one is used', async () => {
    const p = policy({ 'inside.example.com': ['10.0.0.5'], 'outside.example.com': ['203.0.114.7'] });
    const resolveSrv = srv({
      '_xmpp-client._tcp.example.com': [
        record('inside.example.com', 5222, 1),
        record('outside.example.com', 5222, 2),
      ],
    });
    assert.deepEqual(await all({ policy: p, domain: 'example.com', resolveSrv }), [
      'xmpp://203.0.114.7:5222',
    ]);
    const onlyInside = srv({ '_xmpp-client._tcp.example.com': [record('inside.example.com', 5222)] });
    await refused(all({ policy: p, domain: 'example.com', resolveSrv: onlyInside }));
  });

  test('the address the policy checked is what the library connects to (v4, v6, direct TLS)', async () => {
    const p = policy({
      'xmpp.example.com': ['2001:4860::8', '203.0.114.9'],
      'tls.example.com': ['203.0.114.10'],
    });
    assert.deepEqual(
      await all({ policy: p, domain: 'example.com', host: 'xmpp.example.com', resolveSrv: srv({}) }),
      ['xmpp://[2001:4860::8]:5222'],
    );
    const resolveSrv = srv({ '_xmpps-client._tcp.example.com': [record('tls.example.com', 5223)] });
    assert.deepEqual(await all({ policy: p, domain: 'example.com', resolveSrv }), [
      'xmpps://203.0.114.10:5223',
    ]);
  });

  test('the allow list opens a private destination, on any port', async () => {
    const p = policy({ 'xmpp.lab.test': ['10.9.8.7'] }, ['10.9.0.0/16']);
    assert.deepEqual(
      await all({ policy: p, domain: 'lab.test', host: 'xmpp.lab.test', port: 15222, resolveSrv: srv({}) }),
      ['xmpp://10.9.8.7:15222'],
    );
  });

  test('ports other than the XMPP ones are refused; an unknown host fails as a DNS error', async () => {
    const p = policy({ 'xmpp.example.com': ['203.0.114.9'] });
    await refused(
      all({ policy: p, domain: 'example.com', host: 'xmpp.example.com', port: 22, resolveSrv: srv({}) }),
    );
    await assert.rejects(
      all({ policy: p, domain: 'nowhere.example', resolveSrv: srv({}) }),
      (err: unknown) => (err as { code?: string }).code === 'ENOTFOUND',
    );
  });

  test('a target is resolved only when the one before it did not work out', async () => {
    const p = policy({ 'a.example.com': ['203.0.114.1'], 'b.example.com': ['203.0.114.2'] });
    const resolveSrv = srv({
      '_xmpp-client._tcp.example.com': [record('a.example.com', 5222, 1), record('b.example.com', 5222, 2)],
    });
    const it = checkedDestinations({ policy: p, domain: 'example.com', resolveSrv });
    assert.equal((await it.next()).value?.service, 'xmpp://203.0.114.1:5222');
    assert.deepEqual(p.asked, ['a.example.com']);
    assert.equal((await it.next()).value?.service, 'xmpp://203.0.114.2:5222');
  });
});

describe('socket parameters', () => {
  test('an IPv6 literal loses its brackets; direct TLS to an address checks the JID domain', () => {
    const x = client({ service: 'xmpp://127.0.0.1:5222', domain: 'example.com' });
    useDomainForTls(x, 'example.com');
    const params = (service: string) => {
      (x as unknown as { Transport: unknown }).Transport = (
        x as unknown as { _findTransport(s: string): unknown }
      )._findTransport(service);
      return x.socketParameters(service);
    };
    assert.deepEqual(params('xmpp://[2001:db8::1]:5222'), { host: '2001:db8::1', port: 5222 });
    assert.deepEqual(params('xmpps://203.0.114.10:5223'), {
      host: '203.0.114.10',
      port: 5223,
      servername: 'example.com',
    });
    // A name needs no servername of its own: TLS takes it from the host.
    assert.deepEqual(params('xmpps://tls.example.com:5223'), { host: 'tls.example.com', port: 5223 });
  });

  test('under the policy a see-other-host redirect is the stream error it is, not a new connection', () => {
    const entity = Object.assign(new EventEmitter(), { _onSeeOtherHost: (_e: Error): unknown => 'followed' });
    const errors: unknown[] = [];
    entity.on('error', (e) => errors.push(e));
    refuseRedirects(entity);
    const redirect = Object.assign(new Error('see-other-host'), { name: 'StreamError' });
    entity._onSeeOtherHost(redirect);
    assert.deepEqual(errors, [redirect]);
  });
});
