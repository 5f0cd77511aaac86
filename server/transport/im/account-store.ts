/**
 * Chat (XMPP) accounts of the devices pinned to this transport node: the IM
 * codec of the kit's SealedAccountStore (kit/account-store.ts), sub-database
 * `im.accounts` of the node's TransportStorage (one node) or the shared
 * table `im_accounts` (cluster). The password is sealed, the
 * account id bound as context.
 *
 * The account id is derived from device and JID, so a second im.login of the
 * same JID on the same device updates the one account instead of adding another.
 */
import { createHash } from 'node:crypto';
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { CredentialCipher } from '../credentials.ts';
import { type AccountCodec, type AccountRecords, SealedAccountStore } from '../kit/account-store.ts';
import type { TransportStorage } from '../kit/transport-storage.ts';

export interface ImAccount {
  id: string;
  deviceId: string;
  /** Bare JID. */
  jid: string;
  password: string;
  host?: string;
  port?: number;
  /** The service profile preset the server settings came from (im.login {preset}, provisioning). */
  preset?: string;
  /** Credentials provisioned by the operator (admin API): brought up and kept in step by the transport. */
  provisioned?: boolean;
  createdAt: number;
  updatedAt: number;
}

export type ImAccountSettings = Pick<
  ImAccount,
  'jid' | 'password' | 'host' | 'port' | 'preset' | 'provisioned'
>;

export interface StoredImAccountV1 {
  v: 1;
  id: string;
  deviceId: string;
  jid: string;
  secret: string;
  host?: string;
  port?: number;
  preset?: string;
  provisioned?: boolean;
  createdAt: number;
  updatedAt: number;
}

/** What IM methods need from storage; SealedImAccountStore is the real one. */
export interface ImAccountStore {
  /** Stores (or updates) the account under `id` (imAccountId of device and JID); resolves once durable. */
  put(deviceId: string, id: string, settings: ImAccountSettings, now: number): Promise<ImAccount>;
  /** The account, only if it belongs to this device; else im.not_found. */
  get(deviceId: string, accountId: string): ImAccount;
  /** Like get, without reading the secret: im.not_found unless the account belongs to this device. */
  assertOwned(deviceId: string, accountId: string): void;
  list(deviceId: string): ImAccount[];
  /** Every device with at least one account on this node. */
  devices(): string[];
  /** Accounts per device on this node (heartbeat counts); absent in stores that cannot tell. */
  census?(): Map<string, number>;
  remove(deviceId: string, accountId: string): Promise<boolean>;
  close(): Promise<void>;
}

export function imAccountId(deviceId: string, jid: string): string {
  return 'x' + createHash('sha256').update(`${deviceId}\u0000${jid}`).digest('hex').slice(0, 16);
}

const notFound = (accountId: string) =>
  new GatewayError('im.not_found', `no chat account ${accountId} on this device`, { field: 'account' });

const imAccountCodec: AccountCodec<ImAccount, ImAccountSettings, StoredImAccountV1> = {
  service: 'im',
  version: 1,
  notFound,
  toRecord: (settings, { id, deviceId, createdAt, now }, seal) => ({
    v: 1,
    id,
    deviceId,
    jid: settings.jid,
    secret: seal(settings.password),
    ...(settings.host === undefined ? {} : { host: settings.host }),
    ...(settings.port === undefined ? {} : { port: settings.port }),
    ...(settings.preset === undefined ? {} : { preset: settings.preset }),
    ...(settings.provisioned ? { provisioned: true } : {}),
    createdAt,
    updatedAt: now,
  }),
  fromRecord: (record, open) => ({
    id: record.id,
    deviceId: record.deviceId,
    jid: record.jid,
    password: open(record.secret),
    ...(record.host === undefined ? {} : { host: record.host }),
    ...(record.port === undefined ? {} : { port: record.port }),
    ...(record.preset === undefined ? {} : { preset: record.preset }),
    ...(record.provisioned ? { provisioned: true } : {}),
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
  }),
};

export class SealedImAccountStore
  extends SealedAccountStore<ImAccount, ImAccountSettings, StoredImAccountV1>
  implements ImAccountStore
{
  /** Over the node's storage (one node) or the cluster's shared records (SharedAccountRecords). */
  constructor(
    opts: { cipher: CredentialCipher } & (
      | { storage: TransportStorage }
      | { records: AccountRecords<StoredImAccountV1> }
    ),
  ) {
    super({ ...opts, codec: imAccountCodec });
  }

  /** No decryption: this runs on every request. */
  assertOwned(deviceId: string, accountId: string): void {
    if (!this.has(deviceId, accountId)) throw notFound(accountId);
  }

  /** The storage (or shared table) is the node's: whoever opened it closes it. */
  async close(): Promise<void> {}
}
