import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DeviceKnowledge, type SharedKnowledge } from './knowledge.ts';
import { gatewayMethods } from './methods.ts';
import { RequestGenerator } from './requests.ts';
import { Rng } from './rng.ts';
import { showValue } from './values.ts';

const methods = gatewayMethods();

function generator(seed: number): RequestGenerator {
  const server = { host: '127.0.0.1', port: 143, user: 'fuzz0@example.test', password: 'pw' };
  const self = new DeviceKnowledge(
    'imei0',
    {
      address: server.user,
      password: 'pw',
      imap: { ...server, tls: 'none' },
      smtp: { ...server, tls: 'starttls', allowInvalidCert: true },
    },
    { jid: server.user, password: 'pw', host: '127.0.0.1', port: 5222 },
  );
  self.mailAccounts.add('m1');
  self.imAccounts.add('x0123456789abcdef');
  self.uids.push(1, 2, 3);
  const other = new DeviceKnowledge('imei1', self.mail, { ...self.xmpp, jid: 'fuzz1@example.test' });
  other.mailAccounts.add('m-other');
  const shared: SharedKnowledge = { devices: [self, other] };
  return new RequestGenerator(methods, new Rng(seed).fork('device-0'), self, shared, () => 256 * 1024);
}

const line = (r: ReturnType<RequestGenerator['next']>) =>
  `${r.mode} ${r.method} ${r.mutation ?? ''} ${showValue(r.body, 5000)}`;

describe('a handset’s request stream', () => {
  test('is the same for the same seed, and another for another seed', () => {
    const a = generator(5);
    const b = generator(5);
    const c = generator(6);
    const seqA = Array.from({ length: 200 }, () => line(a.next()));
    assert.deepEqual(
      Array.from({ length: 200 }, () => line(b.next())),
      seqA,
    );
    assert.notDeepEqual(
      Array.from({ length: 200 }, () => line(c.next())),
      seqA,
    );
  });

  test('mixes valid, mutated and random requests, reaches every method, and probes names that are not methods', () => {
    const g = generator(9);
    const modes = new Map<string, number>();
    const names = new Set<string>();
    let valid = 0;
    let foreign = 0;
    for (let i = 0; i < 2000; i++) {
      const r = g.next();
      modes.set(r.mode, (modes.get(r.mode) ?? 0) + 1);
      names.add(r.method);
      if (r.mode === 'valid' && r.schemaValid) valid++;
      if (r.foreignAccount !== undefined) {
        foreign++;
        assert.equal(r.foreignAccount, 'm-other');
      }
    }
    for (const mode of ['valid', 'mutated', 'random'])
      assert.ok((modes.get(mode) ?? 0) > 150, `${mode}: ${modes.get(mode)}`);
    for (const m of methods) assert.ok(names.has(m.method), `${m.method} never sent`);
    assert.ok(
      [...names].some((n) => !methods.some((m) => m.method === n)),
      'no near-miss names',
    );
    // Ids from the device's knowledge make most valid-looking bodies pass their schema.
    assert.ok(valid > (modes.get('valid') ?? 0) * 0.6, `${valid} of ${modes.get('valid')} valid bodies pass`);
    assert.ok(foreign > 0);
  });
});
