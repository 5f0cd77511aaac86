/**
 * Chat accounts an operator provisioned for a device, kept in step by the
 * kit's provisionAccounts (kit/provisioned.ts) when the device's session
 * comes up. For IM:
 *
 * - the id derives from device and JID, as for im.login;
 * - a new or changed account (password, preset server) is stored, its XMPP
 *   session opened, and `im.online {account, jid, state, preset, provisioned:
 *   true}` pushed once it is online (a failure comes as the usual im.state);
 *   an unchanged one is left to restoreDevice, which brings stored accounts back;
 * - a removed one is logged out and goes with `im.logged_out {account, preset,
 *   provisioned: true}`.
 */
import { orAfter } from '../kit/deadline.ts';
import type { PresetAccount } from '../../store/device-profile.ts';
import { provisionAccounts, type ProvisionedService } from '../kit/provisioned.ts';
import type { ProvisionOptions } from '../service-profile.ts';
import { type ImAccount, type ImAccountSettings, imAccountId } from './account-store.ts';
import type { ImDeps } from './deps.ts';
import { imPresets, imServerFromPreset } from './presets.ts';

export interface ImProvisionOptions extends ProvisionOptions {
  /** How long to wait for a new account's first login before moving on. Default 10 s. */
  firstLoginMs?: number;
}

function provisionedIm(
  deps: ImDeps,
  firstLoginMs: number,
): ProvisionedService<PresetAccount, ImAccountSettings, ImAccount> {
  return {
    presets: imPresets,
    removedEvent: 'im.logged_out',
    accountId: (deviceId, entry) => imAccountId(deviceId, entry.user.toLowerCase()),
    settings(entry, preset, password) {
      const jid = entry.user.toLowerCase();
      // request.bad_input for a JID off the preset's domain: the entry is left alone (logged).
      return { jid, password, ...imServerFromPreset(preset, jid), preset: entry.label, provisioned: true };
    },
    list: (deviceId) => deps.accounts.list(deviceId),
    unchanged: (stored, settings) =>
      stored.password === settings.password &&
      stored.host === settings.host &&
      stored.port === settings.port &&
      stored.preset === settings.preset,
    store: (deviceId, id, settings, now) => deps.accounts.put(deviceId, id, settings, now),
    async bringUp(account, stored, o) {
      if (!stored) return;
      // persistent: an unreachable server is retried in the background (im.state tells the device).
      const started = deps.sessions.open(account, { persistent: true });
      const online = await orAfter(
        started.then(
          () => true,
          () => false,
        ),
        firstLoginMs,
        false,
      );
      if (!online) return;
      await o
        .push('im.online', {
          account: account.id,
          jid: account.jid,
          state: 'online',
          preset: account.preset ?? '',
          provisioned: true,
        })
        .catch(() => 0);
    },
    async remove(deviceId, account) {
      await deps.sessions.close(account.id);
      deps.sessions.recordLogout(account);
      await deps.accounts.remove(deviceId, account.id);
      await deps.sent?.removeOwner(account.id);
    },
  };
}

export function provisionImAccounts(deps: ImDeps, o: ImProvisionOptions): Promise<void> {
  return provisionAccounts(provisionedIm(deps, o.firstLoginMs ?? 10_000), o);
}
