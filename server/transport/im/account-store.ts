/**
 * Chat (XMPP) accounts of the devices pinned to this transport node, in lmdb
 * under `<dataDir>/transport`. Passwords are sealed with the node's
 * CredentialCipher, the account id bound as context. Records carry a version
 * `v` so that a newer release can still read what an older one wrote.
 *
 * The account id is derived from device and JID, so a second im.login of the
 * same JID on the same device updates the one account instead of adding another.
 */
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { CredentialCipher } from '../credentials.ts';

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

interface StoredImAccountV1 {
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

/** What IM methods need from storage; LmdbImAccountStore is the real one. */
export interface ImAccountStore {
  /** Stores (or updates) the account; resolves once durable. */
  put(deviceId: string, settings: ImAccountSettings, now: number): Promise<ImAccount>;
  /** The account, only if it belongs to this device; else im.not_found. */
  get(deviceId: string, accountId: string): ImAccount;
  /** Like get, without reading the secret: im.not_found unless the account belongs to this device. */
  assertOwned(deviceId: string, accountId: string): void;
  list(deviceId: string): ImAccount[];
  /** Every device with at least one account on this node. */
  devices(): string[];
  remove(deviceId: string, accountId: string): Promise<boolean>;
  close(): Promise<void>;
}

export function imAccountId(deviceId: string, jid: string): string {
  return 'x' + createHash('sha256').update(`${deviceId}\u0000${jid}`).digest('hex').slice(0, 16);
}

const key = (deviceId: string, accountId: string) => `im.account/${deviceId}/${accountId}`;

export class LmdbImAccountStore implements ImAccountStore {
  readonly #db: RootDatabase;
  readonly #cipher: CredentialCipher;

  constructor(opts: { dataDir: string; cipher: CredentialCipher }) {
    const dir = join(opts.dataDir, 'transport');
    mkdirSync(dir, { recursive: true });
    this.#db = open({ path: join(dir, 'im-accounts.mdb'), encoding: 'msgpack' });
    this.#cipher = opts.cipher;
  }

  async put(deviceId: string, settings: ImAccountSettings, now: number): Promise<ImAccount> {
    const id = imAccountId(deviceId, settings.jid);
    const previous = this.#db.get(key(deviceId, id)) as StoredImAccountV1 | undefined;
    const record: StoredImAccountV1 = {
      v: 1,
      id,
      deviceId,
      jid: settings.jid,
      secret: this.#cipher.encrypt(settings.password, id),
      ...(settings.host === undefined ? {} : { host: settings.host }),
      ...(settings.port === undefined ? {} : { port: settings.port }),
      ...(settings.preset === undefined ? {} : { preset: settings.preset }),
      ...(settings.provisioned ? { provisioned: true } : {}),
      createdAt: previous?.createdAt ?? now,
      updatedAt: now,
    };
    // put resolves once the transaction is committed: durable before we acknowledge.
    await this.#db.put(key(deviceId, id), record);
    return this.#open(record);
  }

  get(deviceId: string, accountId: string): ImAccount {
    const record = this.#db.get(key(deviceId, accountId)) as StoredImAccountV1 | undefined;
    if (!record)
      throw new GatewayError('im.not_found', `no chat account ${accountId} on this device`, {
        field: 'account',
      });
    return this.#open(record);
  }

  /** Throws im.not_found unless the device has this account; no decryption (the hot path of every request). */
  assertOwned(deviceId: string, accountId: string): void {
    if (this.#db.get(key(deviceId, accountId)) === undefined)
      throw new GatewayError('im.not_found', `no chat account ${accountId} on this device`, {
        field: 'account',
      });
  }

  list(deviceId: string): ImAccount[] {
    const prefix = `im.account/${deviceId}/`;
    const out: ImAccount[] = [];
    for (const { value } of this.#db.getRange({ start: prefix, end: prefix + '\uffff' })) {
      out.push(this.#open(value as StoredImAccountV1));
    }
    return out;
  }

  devices(): string[] {
    const out = new Set<string>();
    const prefix = 'im.account/';
    for (const k of this.#db.getKeys({ start: prefix, end: prefix + '\uffff' })) {
      const rest = String(k).slice(prefix.length);
      out.add(rest.slice(0, rest.lastIndexOf('/')));
    }
    return [...out];
  }

  async remove(deviceId: string, accountId: string): Promise<boolean> {
    return this.#db.remove(key(deviceId, accountId));
  }

  async close(): Promise<void> {
    await this.#db.close();
  }

  #open(record: StoredImAccountV1): ImAccount {
    if (record.v !== 1)
      throw new GatewayError('internal', `chat account record version ${record.v} is unknown`);
    return {
      id: record.id,
      deviceId: record.deviceId,
      jid: record.jid,
      password: this.#cipher.decrypt(record.secret, record.id),
      ...(record.host === undefined ? {} : { host: record.host }),
      ...(record.port === undefined ? {} : { port: record.port }),
      ...(record.preset === undefined ? {} : { preset: record.preset }),
      ...(record.provisioned ? { provisioned: true } : {}),
      createdAt: record.createdAt,
      updatedAt: record.updatedAt,
    };
  }
}
