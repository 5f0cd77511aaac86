import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import pino from 'pino';
import type { Bus } from '../../bus/bus.ts';
import type { DeviceProfile, PresetAccount } from '../../store/device-profile.ts';
import type { MethodContext } from '../types.ts';
import { type ServicePresets, servicePreset, servicePresetsMethod } from './presets.ts';

type Tagged = PresetAccount & { imapHost: string };

/** A service that can use only presets with an IMAP host, shown by label and host. */
const kind: ServicePresets<Tagged> = {
  service: 'mail',
  noun: 'post',
  usable: (p): p is Tagged => p.service === 'mail' && p.imapHost !== undefined,
  view: (p) => ({ label: p.label, host: p.imapHost }),
};

const profile: DeviceProfile = {
  profile: 'gold',
  presets: [
    { service: 'mail', label: 'Corp', imapHost: 'imap.corp' },
    { service: 'mail', label: 'Half' },
    { service: 'im', label: 'Chat', xmppHost: 'xmpp.corp' },
    { service: 'mail', label: 'Home', imapHost: 'imap.home' },
  ],
  policies: {},
  accounts: [],
};

const ctx = (p: DeviceProfile | undefined): MethodContext => ({
  deviceId: 'd',
  sessionId: 's',
  requestId: 'r',
  bus: {} as Bus,
  logger: pino({ level: 'silent' }),
  dataDir: '',
  ...(p === undefined ? {} : { profile: p }),
  now: Date.now,
  push: async () => 1,
});

describe('service presets', () => {
  test('a label names the service’s usable preset, else service.unknown_preset on field preset', () => {
    assert.equal(servicePreset(kind, profile, 'Corp').imapHost, 'imap.corp');
    for (const [p, label] of [
      [profile, 'Half'],
      [profile, 'Chat'],
      [profile, 'Nope'],
      [undefined, 'Corp'],
    ] as const) {
      assert.throws(() => servicePreset(kind, p, label), {
        code: 'service.unknown_preset',
        field: 'preset',
        message: `The service profile of this device has no post preset "${label}" (mail.presets lists them).`,
      });
    }
  });

  test('<service>.presets lists the usable presets of the service as it shows them, any body ignored', async () => {
    const method = servicePresetsMethod(kind);
    assert.equal(method.method, 'mail.presets');
    assert.deepEqual(await method.handle(ctx(profile), method.input.parse({ junk: 1 })), {
      presets: [
        { label: 'Corp', host: 'imap.corp' },
        { label: 'Home', host: 'imap.home' },
      ],
    });
    assert.deepEqual(await method.handle(ctx(undefined), undefined), { presets: [] });
  });
});
