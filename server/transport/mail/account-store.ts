/**
 * Mail accounts of the devices pinned to this transport node, in lmdb under
 * `<dataDir>/transport`. Passwords are sealed with the node's CredentialCipher
 * (the account id is bound as context). Records carry a version `v` so that a
 * newer release can still read what an older one wrote.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { CredentialCipher } from '../credentials.ts';

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

type MailAccountInput = Omit<MailAccount, 'id' | 'deviceId' | 'createdAt'>;

interface StoredServer extends Omit<MailServerSettings, 'password'> {
  secret: string;
}

interface StoredAccountV1 {
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

/** What mail methods need from storage; the lmdb one below is the real one. */
export interface MailAccountStore {
  add(deviceId: string, account: MailAccountInput, now: number): Promise<MailAccount>;
  /** Stores the account under a chosen id (provisioned accounts), replacing what was there. */
  put(deviceId: string, id: string, account: MailAccountInput, now: number): Promise<MailAccount>;
  /** The account, only if it belongs to this device; else mail.not_found. */
  get(deviceId: string, accountId: string): MailAccount;
  list(deviceId: string): MailAccount[];
  remove(deviceId: string, accountId: string): Promise<boolean>;
  close(): Promise<void>;
}

const key = (deviceId: string, accountId: string) => `mail.account/${deviceId}/${accountId}`;

export class LmdbMailAccountStore implements MailAccountStore {
  readonly #db: RootDatabase;
  readonly #cipher: CredentialCipher;

  constructor(opts: { dataDir: string; cipher: CredentialCipher }) {
    const dir = join(opts.dataDir, 'transport');
    mkdirSync(dir, { recursive: true });
    this.#db = open({ path: join(dir, 'mail-accounts.mdb'), encoding: 'msgpack' });
    this.#cipher = opts.cipher;
  }

  add(deviceId: string, account: MailAccountInput, now: number): Promise<MailAccount> {
    return this.put(deviceId, 'm' + randomBytes(8).toString('hex'), account, now);
  }

  async put(deviceId: string, id: string, account: MailAccountInput, now: number): Promise<MailAccount> {
    const previous = this.#db.get(key(deviceId, id)) as StoredAccountV1 | undefined;
    const createdAt = previous?.createdAt ?? now;
    const seal = (s: MailServerSettings): StoredServer => {
      const { password, ...rest } = s;
      return { ...rest, secret: this.#cipher.encrypt(password, id) };
    };
    const record: StoredAccountV1 = {
      v: 1,
      id,
      deviceId,
      address: account.address,
      ...(account.name === undefined ? {} : { name: account.name }),
      imap: seal(account.imap),
      smtp: seal(account.smtp),
      ...(account.preset === undefined ? {} : { preset: account.preset }),
      ...(account.provisioned ? { provisioned: true } : {}),
      createdAt,
    };
    // put resolves once the transaction is committed (durable before we acknowledge).
    await this.#db.put(key(deviceId, id), record);
    return { ...account, id, deviceId, createdAt };
  }

  get(deviceId: string, accountId: string): MailAccount {
    const record = this.#db.get(key(deviceId, accountId)) as StoredAccountV1 | undefined;
    if (!record)
      throw new GatewayError('mail.not_found', `no mail account ${accountId} on this device`, {
        field: 'account',
      });
    return this.#open(record);
  }

  list(deviceId: string): MailAccount[] {
    const prefix = `mail.account/${deviceId}/`;
    const out: MailAccount[] = [];
    for (const { value } of this.#db.getRange({ start: prefix, end: prefix + '\uffff' })) {
      out.push(this.#open(value as StoredAccountV1));
    }
    return out;
  }

  async remove(deviceId: string, accountId: string): Promise<boolean> {
    return this.#db.remove(key(deviceId, accountId));
  }

  async close(): Promise<void> {
    await this.#db.close();
  }

  #open(record: StoredAccountV1): MailAccount {
    if (record.v !== 1)
      throw new GatewayError('internal', `mail account record version ${record.v} is unknown`);
    const unseal = (s: StoredServer): MailServerSettings => {
      const { secret, ...rest } = s;
      return { ...rest, password: this.#cipher.decrypt(secret, record.id) };
    };
    return {
      id: record.id,
      deviceId: record.deviceId,
      address: record.address,
      ...(record.name === undefined ? {} : { name: record.name }),
      imap: unseal(record.imap),
      smtp: unseal(record.smtp),
      ...(record.preset === undefined ? {} : { preset: record.preset }),
      ...(record.provisioned ? { provisioned: true } : {}),
      createdAt: record.createdAt,
    };
  }
}
