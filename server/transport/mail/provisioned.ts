/**
 * Mail accounts an operator provisioned for a device, kept in step by the
 * kit's provisionAccounts (kit/provisioned.ts) when the device's session
 * comes up. For mail:
 *
 * - the id derives from device and label, so the same account keeps its id
 *   when the operator changes its password, user or the preset's servers;
 * - a new or changed account is stored, its IMAP session (and INBOX watcher)
 *   restarted, brought online and `mail.account.added {account, address,
 *   preset, provisioned: true, state}` pushed; an unchanged one is only
 *   brought online if it is not (the pool's `mail.account.state` pushes say so);
 * - a removed one goes with `mail.account.removed {account, preset, provisioned: true}`.
 */
import { createHash } from 'node:crypto';
import { toGatewayError } from '../../../device-protocol/errors.ts';
import { provisionAccounts, type ProvisionedService } from '../kit/provisioned.ts';
import type { ProvisionOptions } from '../service-profile.ts';
import type { MailAccount, MailAccountInput, MailServerSettings } from './account-store.ts';
import type { MailDeps } from './deps.ts';
import { type MailPreset, mailPresets, mailSettingsFromPreset } from './presets.ts';

export function provisionedMailAccountId(deviceId: string, label: string): string {
  return (
    'm' + createHash('sha256').update(`${deviceId}\u0000provisioned\u0000${label}`).digest('hex').slice(0, 16)
  );
}

const sameServer = (a: MailServerSettings, b: MailServerSettings) =>
  a.host === b.host &&
  a.port === b.port &&
  a.tls === b.tls &&
  a.user === b.user &&
  a.password === b.password &&
  Boolean(a.allowInvalidCert) === Boolean(b.allowInvalidCert);

function provisionedMail(deps: MailDeps): ProvisionedService<MailPreset, MailAccountInput, MailAccount> {
  const takeDown = async (id: string) => {
    await deps.watchers?.stop(id);
    await deps.sessions.drop(id);
  };
  return {
    presets: mailPresets,
    removedEvent: 'mail.account.removed',
    accountId: (deviceId, entry) => provisionedMailAccountId(deviceId, entry.label),
    settings: (entry, preset, password) => ({
      address: entry.address ?? entry.user,
      preset: entry.label,
      provisioned: true,
      ...mailSettingsFromPreset(preset, { user: entry.user, password }),
    }),
    list: (deviceId) => deps.accounts.list(deviceId),
    unchanged: (stored, settings) =>
      stored.address === settings.address &&
      stored.preset === settings.preset &&
      sameServer(stored.imap, settings.imap) &&
      sameServer(stored.smtp, settings.smtp),
    async store(deviceId, id, settings, now) {
      await takeDown(id);
      return deps.accounts.put(deviceId, id, settings, now);
    },
    async bringUp(account, stored, o) {
      if (!stored && deps.sessions.state(account.id) === 'online') return;
      // The pool pushes mail.account.state (connecting, online or auth_failed) on its way.
      await deps.sessions
        .use(account, 'noop', (client) => client.noop())
        .catch((err) =>
          o.logger?.warn(
            { deviceId: account.deviceId, account: account.id, code: toGatewayError(err).code },
            'provisioned mail account not online',
          ),
        );
      if (!stored) return;
      await o
        .push('mail.account.added', {
          account: account.id,
          address: account.address,
          preset: account.preset ?? '',
          provisioned: true,
          state: deps.sessions.state(account.id),
        })
        .catch(() => 0);
    },
    async remove(deviceId, account) {
      await takeDown(account.id);
      await deps.watchers?.forget(deviceId, account.id);
      await deps.accounts.remove(deviceId, account.id);
      await deps.sentMarks.removeOwner(account.id);
    },
  };
}

export function provisionMailAccounts(deps: MailDeps, o: ProvisionOptions): Promise<void> {
  return provisionAccounts(provisionedMail(deps), o);
}
