import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { Value } from '../../../device-protocol/messages.ts';
import {
  type DeviceProfile,
  type PresetAccount,
  type ProvisionedAccount,
  provisionedSecretContext,
} from '../../store/device-profile.ts';
import type { ProvisionOptions } from '../service-profile.ts';
import type { ServicePresets } from './presets.ts';
import { provisionAccounts, type ProvisionedService } from './provisioned.ts';

interface Settings {
  user: string;
  password: string;
  host: string;
  preset: string;
  provisioned: true;
}
interface Account extends Settings {
  id: string;
}

const presets: ServicePresets = {
  service: 'im',
  noun: 'chat',
  // Presets without a host cannot be used (as a mail preset without its servers).
  usable: (p): p is PresetAccount => p.service === 'im' && p.xmppHost !== undefined,
  view: (p) => ({ label: p.label }),
};

/** An in-memory service that notes every step provisioning takes. */
function fakeService(initial: Account[] = []) {
  const stored = new Map(initial.map((a) => [a.id, a]));
  const steps: string[] = [];
  const kind: ProvisionedService<PresetAccount, Settings, Account> = {
    presets,
    removedEvent: 'im.logged_out',
    accountId: (deviceId, entry) => `${deviceId}:${entry.label}`,
    settings(entry, preset, password) {
      if (entry.user.includes('@other')) throw new GatewayError('request.bad_input', 'jid: not this domain');
      return {
        user: entry.user,
        password,
        host: preset.xmppHost ?? '',
        preset: entry.label,
        provisioned: true,
      };
    },
    list: () => [...stored.values()],
    unchanged: (a, s) => a.password === s.password && a.host === s.host && a.user === s.user,
    async store(_deviceId, id, settings) {
      steps.push(`store ${id}`);
      const account = { id, ...settings };
      stored.set(id, account);
      return account;
    },
    async bringUp(account, fresh, o) {
      steps.push(`up ${account.id}${fresh ? ' (stored)' : ''}`);
      if (fresh)
        await o.push('im.online', { account: account.id, preset: account.preset, provisioned: true });
    },
    async remove(_deviceId, account) {
      steps.push(`remove ${account.id}`);
      stored.delete(account.id);
    },
  };
  return { kind, stored, steps };
}

const entry = (label: string, password: string, user = `${label.toLowerCase()}@x`): ProvisionedAccount => ({
  label,
  service: 'im',
  user,
  secret: `sealed|${provisionedSecretContext('dev', label)}|${password}`,
  createdAt: 1,
  updatedAt: 1,
});

const profileWith = (accounts: ProvisionedAccount[], more: Partial<DeviceProfile> = {}): DeviceProfile => ({
  profile: 'p',
  presets: [
    { service: 'im', label: 'A', xmppHost: 'a.example' },
    { service: 'im', label: 'B', xmppHost: 'b.example' },
    { service: 'im', label: 'NoHost' },
    { service: 'mail', label: 'M', imapHost: 'i', smtpHost: 's' },
  ],
  policies: {},
  accounts,
  ...more,
});

function run(kind: ProvisionedService<PresetAccount, Settings, Account>, profile: DeviceProfile) {
  const pushed: { name: string; body: Value | undefined }[] = [];
  const o: ProvisionOptions = {
    deviceId: 'dev',
    profile,
    // Opens only what was sealed under this device's and label's context, as the CredentialCipher would.
    open(sealed, context) {
      const [tag, ctx, password] = sealed.split('|');
      if (tag !== 'sealed' || ctx !== context || password === undefined) {
        throw new GatewayError('credentials.unreadable', 'sealed with another key');
      }
      return password;
    },
    push: async (name, body) => {
      pushed.push({ name, body });
      return pushed.length;
    },
    now: () => 5,
  };
  return provisionAccounts(kind, o).then(() => pushed);
}

const stored = (label: string, password: string): Account => ({
  id: `dev:${label}`,
  user: `${label.toLowerCase()}@x`,
  password,
  host: `${label.toLowerCase()}.example`,
  preset: label,
  provisioned: true,
});

describe('provisionAccounts', () => {
  test('new accounts are stored and brought up; the device hears of each', async () => {
    const { kind, stored: store, steps } = fakeService();
    const pushed = await run(kind, profileWith([entry('A', 'pa'), entry('B', 'pb')]));
    assert.deepEqual(steps.sort(), ['store dev:A', 'store dev:B', 'up dev:A (stored)', 'up dev:B (stored)']);
    assert.deepEqual(store.get('dev:A'), stored('A', 'pa'));
    assert.deepEqual(pushed.map((p) => p.name).sort(), ['im.online', 'im.online']);
  });

  test('unchanged ones are only brought up; changed ones stored again', async () => {
    const { kind, steps } = fakeService([stored('A', 'pa'), stored('B', 'old')]);
    const pushed = await run(kind, profileWith([entry('A', 'pa'), entry('B', 'new')]));
    assert.deepEqual(steps.sort(), ['store dev:B', 'up dev:A', 'up dev:B (stored)']);
    assert.deepEqual(pushed, [
      { name: 'im.online', body: { account: 'dev:B', preset: 'B', provisioned: true } },
    ]);
  });

  test('a stored account the device added itself is taken over as provisioned (stored again)', async () => {
    const own = { ...stored('A', 'pa'), provisioned: undefined } as unknown as Account;
    const { kind, steps } = fakeService([own]);
    await run(kind, profileWith([entry('A', 'pa')]));
    assert.deepEqual(steps, ['store dev:A', 'up dev:A (stored)']);
  });

  test('gone from the registry, its preset or the service: removed, and the device hears it', async () => {
    for (const profile of [
      profileWith([entry('B', 'pb')]),
      profileWith([entry('A', 'pa'), entry('B', 'pb')], {
        presets: [{ service: 'im', label: 'B', xmppHost: 'b.example' }],
      }),
      profileWith([entry('A', 'pa')], { services: ['mail'] }),
    ]) {
      const mine = { ...stored('C', 'pc'), provisioned: undefined } as unknown as Account;
      const { kind, stored: store, steps } = fakeService([stored('A', 'pa'), mine]);
      const pushed = await run(kind, profile);
      assert.ok(steps.includes('remove dev:A'), JSON.stringify(steps));
      assert.ok(!steps.includes('remove dev:C'), 'an account the device added itself stays');
      assert.ok(!store.has('dev:A'));
      assert.deepEqual(
        pushed.filter((p) => p.name === 'im.logged_out'),
        [{ name: 'im.logged_out', body: { account: 'dev:A', preset: 'A', provisioned: true } }],
      );
    }
  });

  test('listed but not usable now: left as it is, never removed for that', async () => {
    const foreignKey: ProvisionedAccount = {
      ...entry('A', 'pa'),
      secret: 'sealed|provisioned:other-device:A|pa',
    };
    const offDomain = entry('B', 'pb', 'b@other');
    const noHost = { ...entry('NoHost', 'pn'), label: 'NoHost' };
    const { kind, steps } = fakeService([
      stored('A', 'old'),
      stored('B', 'pb'),
      { ...stored('NoHost', 'pn') },
    ]);
    const pushed = await run(kind, profileWith([foreignKey, offDomain, noHost]));
    assert.deepEqual(steps, []);
    assert.deepEqual(pushed, []);
  });

  test('entries of another service are not this one’s', async () => {
    const mailEntry: ProvisionedAccount = { ...entry('M', 'pm'), service: 'mail' };
    const { kind, steps } = fakeService();
    await run(kind, profileWith([mailEntry]));
    assert.deepEqual(steps, []);
  });
});
