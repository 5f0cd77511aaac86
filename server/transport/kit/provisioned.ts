/**
 * Accounts an operator provisioned for a device (admin API, `mmgw device
 * account set`), for any service: when the device's session comes up, the
 * transport keeps its own store in step with the registry, with no request
 * from the handset.
 *
 * - Listed, its preset usable and its password opened by this node's key:
 *   stored under an id the service derives (so the same account keeps its
 *   id) when new or changed, then brought up by the service, which tells the
 *   device what it should hear (the account added, online).
 * - Listed but not usable now (a preset the service cannot use, a secret
 *   sealed with another key, settings the preset refuses): logged and left as
 *   it is, never removed for that.
 * - Stored as provisioned but gone from the registry (or its preset, or the
 *   service from the profile): taken down, removed, and the service's
 *   `removedEvent {account, preset, provisioned: true}` pushed.
 */
import { toGatewayError } from '../../../device-protocol/errors.ts';
import {
  findPreset,
  type PresetAccount,
  type ProvisionedAccount,
  provisionedSecretContext,
  serviceAllowed,
} from '../../store/device-profile.ts';
import type { ProvisionOptions } from '../service-profile.ts';
import type { ServicePresets } from './presets.ts';

/** What every stored account tells provisioning. */
export interface ProvisionableAccount {
  id: string;
  preset?: string;
  provisioned?: boolean;
}

/** One service's part in provisioning (mail/provisioned.ts, im/provisioned.ts). */
export interface ProvisionedService<P extends PresetAccount, Settings, Account extends ProvisionableAccount> {
  presets: ServicePresets<P>;
  /** Pushed for an account the operator removed. */
  removedEvent: string;
  /** The account id of a provisioned entry, stable while the operator changes its settings. */
  accountId(deviceId: string, entry: ProvisionedAccount): string;
  /** Its settings from its preset and opened password; throws when the preset refuses them. */
  settings(entry: ProvisionedAccount, preset: P, password: string): Settings;
  /** The device's stored accounts. */
  list(deviceId: string): Account[];
  /** Whether a stored provisioned account already has these settings. */
  unchanged(stored: Account, settings: Settings): boolean;
  /** Stores a new or changed account (taking down what ran with the old settings). */
  store(deviceId: string, id: string, settings: Settings, now: number): Promise<Account>;
  /** Brings the account up; `stored` when it was just stored (new or changed) and the device should hear of it. */
  bringUp(account: Account, stored: boolean, o: ProvisionOptions): Promise<void>;
  /** Takes down and forgets an account the operator removed. */
  remove(deviceId: string, account: Account): Promise<void>;
}

export async function provisionAccounts<
  P extends PresetAccount,
  Settings,
  Account extends ProvisionableAccount,
>(kind: ProvisionedService<P, Settings, Account>, o: ProvisionOptions): Promise<void> {
  const { deviceId, profile, logger } = o;
  const { service, noun } = kind.presets;
  const wanted = new Map<string, Settings>();
  const listed = new Set<string>();
  for (const entry of serviceAllowed(profile, service) ? profile.accounts : []) {
    const preset = entry.service === service ? findPreset(profile, service, entry.label) : undefined;
    if (preset === undefined) continue;
    const id = kind.accountId(deviceId, entry);
    listed.add(id);
    const settings = usableSettings(kind, entry, preset, o);
    if (settings !== undefined) wanted.set(id, settings);
  }

  const local = new Map(kind.list(deviceId).map((a) => [a.id, a]));
  for (const [id, account] of local) {
    if (!account.provisioned || listed.has(id)) continue;
    await kind.remove(deviceId, account);
    logger?.info({ deviceId, account: id, preset: account.preset }, `provisioned ${noun} account removed`);
    await o
      .push(kind.removedEvent, { account: id, preset: account.preset ?? '', provisioned: true })
      .catch(() => 0);
  }

  await Promise.all(
    [...wanted].map(async ([id, settings]) => {
      const before = local.get(id);
      if (before?.provisioned && kind.unchanged(before, settings)) return kind.bringUp(before, false, o);
      const account = await kind.store(deviceId, id, settings, o.now());
      logger?.info({ deviceId, account: id, preset: account.preset }, `provisioned ${noun} account stored`);
      await kind.bringUp(account, true, o);
    }),
  );
}

/** The entry's settings, or undefined (logged) when this node cannot use it now. */
function usableSettings<P extends PresetAccount, Settings>(
  kind: ProvisionedService<P, Settings, ProvisionableAccount>,
  entry: ProvisionedAccount,
  preset: PresetAccount,
  o: ProvisionOptions,
): Settings | undefined {
  const log = (err: unknown, what: string) =>
    o.logger?.warn(
      {
        deviceId: o.deviceId,
        preset: entry.label,
        code: toGatewayError(err).code,
        err: String((err as Error).message),
      },
      what,
    );
  if (!kind.presets.usable(preset)) {
    o.logger?.warn(
      { deviceId: o.deviceId, preset: entry.label },
      `provisioned ${kind.presets.noun} account has no usable preset`,
    );
    return undefined;
  }
  let password: string;
  try {
    password = o.open(entry.secret, provisionedSecretContext(o.deviceId, entry.label));
  } catch (err) {
    // Most likely the admin sealed it with another key: MMGW_CREDENTIALS_KEY must be the same on admin and transport nodes.
    log(err, `provisioned ${kind.presets.noun} password cannot be opened`);
    return undefined;
  }
  try {
    return kind.settings(entry, preset, password);
  } catch (err) {
    log(err, `provisioned ${kind.presets.noun} account not usable`);
    return undefined;
  }
}
