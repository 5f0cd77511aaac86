import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { open } from 'lmdb';
import {
  type AccountPlace,
  accountStoreCases,
  cipher,
  codecV1,
} from '../../../testing/transport/account-store-cases.ts';
import { imAccountId, SealedImAccountStore } from '../im/account-store.ts';
import { SealedMailAccountStore } from '../mail/account-store.ts';
import { LmdbAccountRecords, SealedAccountStore, type StoredAccount } from './account-store.ts';
import { TransportStorage } from './transport-storage.ts';

const dirs: string[] = [];
const dataDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'mmgw-accounts-'));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Every file of the transport directory, concatenated (to look for a secret in clear). */
const allBytes = (dir: string) =>
  Buffer.concat(readdirSync(join(dir, 'transport')).map((f) => readFileSync(join(dir, 'transport', f))));

/** A fresh transport storage as the place for records (the node's lmdb). */
function lmdbPlace(): AccountPlace {
  const dir = dataDir();
  let storage = TransportStorage.open(dir);
  return {
    records: () => new LmdbAccountRecords(storage, 'mail'),
    async forge(deviceId, record) {
      await storage.database<StoredAccount>('mail.accounts').put([deviceId, record.id], record);
    },
    async reopen() {
      await storage.close();
      storage = TransportStorage.open(dir);
    },
    close: () => storage.close(),
  };
}

describe('SealedAccountStore on the node’s lmdb', () => {
  for (const c of accountStoreCases) {
    test(c.name, async () => {
      const place = lmdbPlace();
      try {
        await c.run(place);
      } finally {
        await place.close();
      }
    });
  }

  test('no secret in clear on disk', async () => {
    const dir = dataDir();
    const storage = TransportStorage.open(dir);
    const store = new SealedAccountStore({ storage, cipher, codec: codecV1 });
    await store.put('dev-1', 'n1', { title: 'first', password: 'pw-in-clear-1' }, 1000);
    await storage.close();
    assert.ok(!allBytes(dir).includes('pw-in-clear-1'), 'no password in clear on disk');
  });
});

describe('the layout of older releases (one lmdb environment per service)', () => {
  /** What the previous release wrote: `<service>-accounts.mdb`, string keys, the same v1 records. */
  async function writeOldLayout(dir: string) {
    mkdirSync(join(dir, 'transport'), { recursive: true });
    const mail = open({ path: join(dir, 'transport', 'mail-accounts.mdb'), encoding: 'msgpack' });
    const server = (host: string, secret: string) => ({
      host,
      port: 143,
      tls: 'none',
      user: 'alice',
      secret,
    });
    await mail.put('mail.account/dev-1/m00aa', {
      v: 1,
      id: 'm00aa',
      deviceId: 'dev-1',
      address: 'alice@example.org',
      imap: server('imap.example.org', cipher.encrypt('imap-pw', 'm00aa')),
      smtp: server('smtp.example.org', cipher.encrypt('smtp-pw', 'm00aa')),
      preset: 'Corp',
      createdAt: 11,
    });
    await mail.put('mail.account/dev-2/m00bb', {
      v: 1,
      id: 'm00bb',
      deviceId: 'dev-2',
      address: 'bob@example.org',
      imap: server('imap.example.org', cipher.encrypt('bob-pw', 'm00bb')),
      smtp: server('imap.example.org', cipher.encrypt('bob-pw', 'm00bb')),
      createdAt: 12,
    });
    await mail.close();
    const im = open({ path: join(dir, 'transport', 'im-accounts.mdb'), encoding: 'msgpack' });
    const xid = imAccountId('dev-1', 'alice@example.test');
    await im.put(`im.account/dev-1/${xid}`, {
      v: 1,
      id: xid,
      deviceId: 'dev-1',
      jid: 'alice@example.test',
      secret: cipher.encrypt('chat-pw', xid),
      host: '127.0.0.1',
      port: 5222,
      provisioned: true,
      createdAt: 13,
      updatedAt: 14,
    });
    await im.close();
    return xid;
  }

  test('a data directory written the old way opens, is read, and is moved into the one environment', async () => {
    const dir = dataDir();
    const xid = await writeOldLayout(dir);
    let storage = TransportStorage.open(dir);
    const mail = new SealedMailAccountStore({ storage, cipher });
    const im = new SealedImAccountStore({ storage, cipher });
    assert.deepEqual(mail.get('dev-1', 'm00aa'), {
      id: 'm00aa',
      deviceId: 'dev-1',
      address: 'alice@example.org',
      imap: { host: 'imap.example.org', port: 143, tls: 'none', user: 'alice', password: 'imap-pw' },
      smtp: { host: 'smtp.example.org', port: 143, tls: 'none', user: 'alice', password: 'smtp-pw' },
      preset: 'Corp',
      createdAt: 11,
    });
    assert.deepEqual(
      mail.list('dev-2').map((a) => a.imap.password),
      ['bob-pw'],
    );
    assert.deepEqual(im.list('dev-1'), [
      {
        id: xid,
        deviceId: 'dev-1',
        jid: 'alice@example.test',
        password: 'chat-pw',
        host: '127.0.0.1',
        port: 5222,
        provisioned: true,
        createdAt: 13,
        updatedAt: 14,
      },
    ]);
    assert.deepEqual(im.devices(), ['dev-1']);
    const files = readdirSync(join(dir, 'transport')).sort();
    assert.deepEqual(files, [
      'data.mdb',
      'im-accounts.mdb.migrated',
      'lock.mdb',
      'mail-accounts.mdb.migrated',
    ]);
    await storage.close();

    // The next start reads the one environment alone.
    storage = TransportStorage.open(dir);
    assert.equal(
      new SealedMailAccountStore({ storage, cipher }).get('dev-2', 'm00bb').address,
      'bob@example.org',
    );
    assert.equal(new SealedImAccountStore({ storage, cipher }).get('dev-1', xid).password, 'chat-pw');
    await storage.close();
  });

  test('a migration cut short (old file still there) keeps what the new environment already holds', async () => {
    const dir = dataDir();
    await writeOldLayout(dir);
    // As if the copy had committed and the node had changed an account before the rename happened.
    const first = TransportStorage.open(dir);
    const raw = first.database<Record<string, unknown>>('mail.accounts');
    await raw.put(['dev-1', 'm00aa'], {
      v: 1,
      id: 'm00aa',
      deviceId: 'dev-1',
      address: 'newer@example.org',
      imap: { host: 'h', port: 1, tls: 'none', user: 'u', secret: cipher.encrypt('new', 'm00aa') },
      smtp: { host: 'h', port: 1, tls: 'none', user: 'u', secret: cipher.encrypt('new', 'm00aa') },
      createdAt: 99,
    });
    await first.close();
    assert.ok(existsSync(join(dir, 'transport', 'mail-accounts.mdb')));
    const storage = TransportStorage.open(dir);
    const mail = new SealedMailAccountStore({ storage, cipher });
    assert.equal(mail.get('dev-1', 'm00aa').address, 'newer@example.org', 'the newer record is kept');
    assert.equal(mail.get('dev-2', 'm00bb').address, 'bob@example.org', 'the missing one is copied');
    assert.ok(!existsSync(join(dir, 'transport', 'mail-accounts.mdb')));
    await storage.close();
  });
});
