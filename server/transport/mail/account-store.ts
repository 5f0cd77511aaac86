/**
 * Mail accounts of the devices pinned to this transport node: the mail codec
 * of the kit's SealedAccountStore (kit/account-store.ts), sub-database
 * `mail.accounts` of the node's TransportStorage (one node) or the shared
 * table `mail_accounts` (cluster). Both passwords (IMAP and
 * SMTP) are sealed, the account id bound as context.
 */
import { randomBytes } from 'node:crypto';
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { CredentialCipher } from '../credentials.ts';
import { type AccountCodec, type AccountRecords, SealedAccountStore } from '../kit/account-store.ts';
import type { TransportStorage } from '../kit/transport-storage.ts';

export type TlsMode = 'none' | 'starttls' | 'implicit';

export interface MailServerSettings {
  host: string;
  port: number;
  tls: TlsMode;
  user: string;
  password: string;
  /** Accept a self-signed or otherwise unverifiable certificate (test servers, private deployments). */
  allowInvalidCert?: boolean;
}

/** An account as the transport role uses it: secrets decrypted, in memory only. */
export interface MailAccount {
  id: string;
  deviceId: string;
  address: string;
  name?: string;
  imap: MailServerSettings;
  smtp: MailServerSettings;
  /** The service profile preset the server settings came from (mail.account.add {preset}, provisioning). */
  preset?: string;
  /** Credentials provisioned by the operator (admin API): brought up and kept in step by the transport. */
  provisioned?: boolean;
  createdAt: number;
}

export type MailAccountInput = Omit<MailAccount, 'id' | 'deviceId' | 'createdAt'>;

interface StoredServer extends Omit<MailServerSettings, 'password'> {
  secret: string;
}

export interface StoredAccountV1 {
  v: 1;
  id: string;
  deviceId: string;
  address: string;
  name?: string;
  imap: StoredServer;
  smtp: StoredServer;
  preset?: string;
  provisioned?: boolean;
  createdAt: number;
}

/** What mail methods need from storage; SealedMailAccountStore is the real one. */
export interface MailAccountStore {
  /** A new account under a fresh id; with `maxPerDevice`, refused (policy.too_many_accounts) at the cap. */
  add(
    deviceId: string,
    account: MailAccountInput,
    now: number,
    opts?: { maxPerDevice?: number },
  ): Promise<MailAccount>;
  /** How many accounts the device has. */
  count(deviceId: string): number;
  /** Stores the account under a chosen id (provisioned accounts), replacing what was there. */
  put(deviceId: string, id: string, account: MailAccountInput, now: number): Promise<MailAccount>;
  /** The account, only if it belongs to this device; else mail.not_found. */
  get(deviceId: string, accountId: string): MailAccount;
  list(deviceId: string): MailAccount[];
  /** Accounts per device on this node (heartbeat counts); absent in stores that cannot tell. */
  census?(): Map<string, number>;
  remove(deviceId: string, accountId: string): Promise<boolean>;
  close(): Promise<void>;
}

const mailAccountCodec: AccountCodec<MailAccount, MailAccountInput, StoredAccountV1> = {
  service: 'mail',
  version: 1,
  notFound: (accountId) =>
    new GatewayError('mail.not_found', `no mail account ${accountId} on this device`, { field: 'account' }),
  toRecord(account, { id, deviceId, createdAt }, seal) {
    const sealServer = ({ password, ...rest }: MailServerSettings): StoredServer => ({
      ...rest,
      secret: seal(password),
    });
    return {
      v: 1,
      id,
      deviceId,
      address: account.address,
      ...(account.name === undefined ? {} : { name: account.name }),
      imap: sealServer(account.imap),
      smtp: sealServer(account.smtp),
      ...(account.preset === undefined ? {} : { preset: account.preset }),
      ...(account.provisioned ? { provisioned: true } : {}),
      createdAt,
    };
  },
  fromRecord(record, open) {
    const openServer = ({ secret, ...rest }: StoredServer): MailServerSettings => ({
      ...rest,
      password: open(secret),
    });
    return {
      id: record.id,
      deviceId: record.deviceId,
      address: record.address,
      ...(record.name === undefined ? {} : { name: record.name }),
      imap: openServer(record.imap),
      smtp: openServer(record.smtp),
      ...(record.preset === undefined ? {} : { preset: record.preset }),
      ...(record.provisioned ? { provisioned: true } : {}),
      createdAt: record.createdAt,
    };
  },
};

export class SealedMailAccountStore
  extends SealedAccountStore<MailAccount, MailAccountInput, StoredAccountV1>
  implements MailAccountStore
{
  /** Over the node's storage (one node) or the cluster's shared records (SharedAccountRecords). */
  constructor(
    opts: { cipher: CredentialCipher } & (
      | { storage: TransportStorage }
      | { records: AccountRecords<StoredAccountV1> }
    ),
  ) {
    super({ ...opts, codec: mailAccountCodec });
  }

  add(
    deviceId: string,
    account: MailAccountInput,
    now: number,
    opts: { maxPerDevice?: number } = {},
  ): Promise<MailAccount> {
    const id = 'm' + randomBytes(8).toString('hex');
    if (opts.maxPerDevice === undefined) return this.put(deviceId, id, account, now);
    return this.putWithin(deviceId, id, account, now, opts.maxPerDevice);
  }

  /** The storage (or shared table) is the node's: whoever opened it closes it. */
  async close(): Promise<void> {}
}
