/**
 * Provisioned accounts: credentials an operator set for a device (the secret
 * sealed by the caller), in the registry's `accounts` table keyed
 * `imei/label` (lmdb: [imei, label]). An account is only written for a device
 * that exists, checked inside the write (on lmdb, in its transaction; on the
 * shared state, in the copy it compare-and-sets against). Removing a device
 * removes its accounts (device-writes.ts).
 */
import { GatewayError } from '../../device-protocol/errors.ts';
import type { AuditActor, AuditOutbox } from './audit-outbox.ts';
import type { ProvisionedAccount } from './device-profile.ts';
import type { Decision, RegistryTable } from './registry-table.ts';

export const PROVISIONED_ACCOUNT_VERSION = 1;
export type ProvisionedAccountRecord = ProvisionedAccount & { v: number };

export interface AccountStoreHost {
  accounts: RegistryTable<ProvisionedAccountRecord>;
  /** Read inside the account's write. */
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
    for (const { value } of this.h.accounts.rows({ prefix: `${imei}/` })) out.push(provisionedView(value));
    return out;
  }

  get(imei: string, label: string): ProvisionedAccount | undefined {
    this.h.assertOpen();
    const raw = this.h.accounts.get(`${imei}/${label}`);
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
    type Answer = { before?: ProvisionedAccount; after: ProvisionedAccount } | undefined;
    const result = await this.h.accounts.change(
      `${imei}/${account.label}`,
      (raw): Decision<ProvisionedAccountRecord, Answer> => {
        if (!this.h.hasDevice(imei)) return { result: undefined };
        const before = raw === undefined ? undefined : provisionedView(raw);
        const after: ProvisionedAccount = { ...account, createdAt: before?.createdAt ?? now, updatedAt: now };
        return {
          put: { ...after, v: PROVISIONED_ACCOUNT_VERSION },
          result: before ? { before, after } : { after },
        };
      },
      ({ result }) => {
        if (audit && result)
          this.h.outbox.put(
            audit,
            result.before ? 'device.account.update' : 'device.account.create',
            `device:${imei}/account:${account.label}`,
            result.before && accountAuditView(result.before),
            accountAuditView(result.after),
          );
      },
    );
    if (!result)
      throw new GatewayError('registry.not_found', `no device with IMEI ${imei}`, { field: 'imei' });
    return result;
  }

  /** Removes one provisioned account; returns what it was (registry.not_found when absent). */
  async remove(imei: string, label: string, audit?: AuditActor): Promise<ProvisionedAccount> {
    this.h.assertOpen();
    const before = await this.h.accounts.change(
      `${imei}/${label}`,
      (raw) => (raw === undefined ? { result: undefined } : { remove: true, result: provisionedView(raw) }),
      ({ result: view }) => {
        if (audit && view)
          this.h.outbox.put(
            audit,
            'device.account.remove',
            `device:${imei}/account:${label}`,
            accountAuditView(view),
          );
      },
    );
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
