/**
 * Provisioned accounts: credentials an operator set for a device (the secret
 * sealed by the caller), in the registry's `accounts` database keyed
 * [imei, label]. An account is only written for a device that exists, checked
 * inside the write transaction (AccountStoreHost.hasDevice reads the devices
 * database in it). Removing a device removes its accounts (device-writes.ts).
 */
import type { Database } from 'lmdb';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { AuditActor, AuditOutbox } from './audit-outbox.ts';
import type { ProvisionedAccount } from './device-profile.ts';

export const PROVISIONED_ACCOUNT_VERSION = 1;
export type ProvisionedAccountRecord = ProvisionedAccount & { v: number };

export interface AccountStoreHost {
  accounts: Database<ProvisionedAccountRecord, string[]>;
  /** Read inside the account's write transaction. */
  hasDevice: (imei: string) => boolean;
  outbox: Pick<AuditOutbox, 'put'>;
  now: () => number;
  /** Throws when the registry is closed. */
  assertOpen: () => void;
}

export class AccountStore {
  constructor(private readonly h: AccountStoreHost) {}

  /** The device's provisioned accounts, by label (the secret stays sealed). */
  list(imei: string): ProvisionedAccount[] {
    this.h.assertOpen();
    const out: ProvisionedAccount[] = [];
    for (const { value } of this.h.accounts.getRange({
      start: [imei],
      end: [imei, '\uffff'],
      snapshot: true,
    })) {
      out.push(provisionedView(value));
    }
    return out;
  }

  get(imei: string, label: string): ProvisionedAccount | undefined {
    this.h.assertOpen();
    const raw = this.h.accounts.get([imei, label]);
    return raw === undefined ? undefined : provisionedView(raw);
  }

  /**
   * Creates or replaces one provisioned account of an existing device; the
   * caller has sealed the secret. Returns the record before (if any) and after.
   */
  async put(
    imei: string,
    account: Omit<ProvisionedAccount, 'createdAt' | 'updatedAt'>,
    audit?: AuditActor,
  ): Promise<{ before?: ProvisionedAccount; after: ProvisionedAccount }> {
    this.h.assertOpen();
    const now = this.h.now();
    const result = await this.h.accounts.transaction(() => {
      if (!this.h.hasDevice(imei)) return undefined;
      const raw = this.h.accounts.get([imei, account.label]);
      const before = raw === undefined ? undefined : provisionedView(raw);
      const after: ProvisionedAccount = { ...account, createdAt: before?.createdAt ?? now, updatedAt: now };
      this.h.accounts.put([imei, account.label], { ...after, v: PROVISIONED_ACCOUNT_VERSION });
      if (audit)
        this.h.outbox.put(
          audit,
          before ? 'device.account.update' : 'device.account.create',
          `device:${imei}/account:${account.label}`,
          before && accountAuditView(before),
          accountAuditView(after),
        );
      return before ? { before, after } : { after };
    });
    if (!result)
      throw new GatewayError('registry.not_found', `no device with IMEI ${imei}`, { field: 'imei' });
    return result;
  }

  /** Removes one provisioned account; returns what it was (registry.not_found when absent). */
  async remove(imei: string, label: string, audit?: AuditActor): Promise<ProvisionedAccount> {
    this.h.assertOpen();
    const before = await this.h.accounts.transaction(() => {
      const raw = this.h.accounts.get([imei, label]);
      if (raw === undefined) return undefined;
      this.h.accounts.remove([imei, label]);
      const view = provisionedView(raw);
      if (audit)
        this.h.outbox.put(
          audit,
          'device.account.remove',
          `device:${imei}/account:${label}`,
          accountAuditView(view),
        );
      return view;
    });
    if (!before)
      throw new GatewayError('registry.not_found', `device ${imei} has no account ${label}`, {
        field: 'label',
      });
    return before;
  }
}

function provisionedView(raw: ProvisionedAccountRecord): ProvisionedAccount {
  // v1 is the only version so far; the sealed secret is opaque here.
  const { v: _v, ...rest } = raw;
  return rest;
}

/** What the audit log keeps of a provisioned account: never its sealed secret. */
function accountAuditView(a: ProvisionedAccount): Omit<ProvisionedAccount, 'secret'> {
  const { secret: _secret, ...rest } = a;
  return rest;
}
