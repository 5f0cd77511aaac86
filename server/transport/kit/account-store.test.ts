import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { open } from 'lmdb';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { CredentialCipher } from '../credentials.ts';
import { imAccountId, LmdbImAccountStore } from '../im/account-store.ts';
import { LmdbMailAccountStore } from '../mail/account-store.ts';
import { type AccountCodec, SealedAccountStore, type StoredAccount } from './account-store.ts';
import { TransportStorage } from './transport-storage.ts';

interface Note {
  id: string;
  deviceId: string;
  title: string;
  password: string;
  createdAt: number;
  updatedAt: number;
}
type NoteInput = Pick<Note, 'title' | 'password'>;
interface StoredNoteV1 extends StoredAccount {
  title: string;
  secret: string;
}
/** Version 2 renamed `title` to `label`. */
interface StoredNoteV2 extends StoredAccount {
  label: string;
  secret: string;
  updatedAt: number;
}

const notFound = (id: string) => new GatewayError('mail.not_found', `no ${id}`, { field: 'account' });

const codecV1: AccountCodec<Note, NoteInput, StoredNoteV1> = {
  service: 'mail',
  version: 1,
  notFound,
  toRecord: (input, { id, deviceId, createdAt }, seal) => ({
    v: 1,
    id,
    deviceId,
    createdAt,
    title: input.title,
    secret: seal(input.password),
  }),
  fromRecord: (r, openSecret) => ({
    id: r.id,
    deviceId: r.deviceId,
    title: r.title,
    password: openSecret(r.secret),
    createdAt: r.createdAt,
    updatedAt: r.createdAt,
  }),
};

const codecV2: AccountCodec<Note, NoteInput, StoredNoteV1 | StoredNoteV2> = {
  service: 'mail',
  version: 2,
  notFound,
  toRecord: (input, { id, deviceId, createdAt, now }, seal) => ({
    v: 2,
    id,
    deviceId,
    createdAt,
    updatedAt: now,
    label: input.title,
    secret: seal(input.password),
  }),
  fromRecord: (r, openSecret) => ({
    id: r.id,
    deviceId: r.deviceId,
    title: r.v === 1 ? (r as StoredNoteV1).title : (r as StoredNoteV2).label,
    password: openSecret(r.secret),
    createdAt: r.createdAt,
    updatedAt: r.v === 1 ? r.createdAt : (r as StoredNoteV2).updatedAt,
  }),
};

const dirs: string[] = [];
const dataDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'mmgw-accounts-'));
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const cipher = new CredentialCipher(randomBytes(32));
const isCode = (code: string) => (err: unknown) => err instanceof GatewayError && err.code === code;

/** Every file of the transport directory, concatenated (to look for a secret in clear). */
const allBytes = (dir: string) =>
  Buffer.concat(readdirSync(join(dir, 'transport')).map((f) => readFileSync(join(dir, 'transport', f))));

describe('SealedAccountStore', () => {
  test('round trip: put, get, list, remove; the secret sealed on disk; createdAt kept on a second put', async () => {
    const dir = dataDir();
    const storage = TransportStorage.open(dir);
    const store = new SealedAccountStore({ storage, cipher, codec: codecV1 });
    const a = await store.put('dev-1', 'n1', { title: 'first', password: 'pw-in-clear-1' }, 1000);
    assert.deepEqual(a, {
      id: 'n1',
      deviceId: 'dev-1',
      title: 'first',
      password: 'pw-in-clear-1',
      createdAt: 1000,
      updatedAt: 1000,
    });
    assert.deepEqual(store.get('dev-1', 'n1'), a);
    const again = await store.put('dev-1', 'n1', { title: 'renamed', password: 'pw-in-clear-2' }, 2000);
    assert.equal(again.createdAt, 1000, 'createdAt is the first put’s');
    assert.equal(store.get('dev-1', 'n1').password, 'pw-in-clear-2');
    await store.put('dev-1', 'n2', { title: 'second', password: 'x' }, 3000);
    assert.deepEqual(
      store.list('dev-1').map((n) => n.id),
      ['n1', 'n2'],
    );
    await store.remove('dev-1', 'n1');
    assert.throws(() => store.get('dev-1', 'n1'), isCode('mail.not_found'));
    await storage.close();
    assert.ok(!allBytes(dir).includes('pw-in-clear-2'), 'no password in clear on disk');
    // A reopened store reads what was written.
    const reopened = TransportStorage.open(dir);
    assert.equal(
      new SealedAccountStore({ storage: reopened, cipher, codec: codecV1 }).get('dev-1', 'n2').title,
      'second',
    );
    await reopened.close();
  });

  test('putWithin: a device holds at most `max` accounts, even when its adds race; others are not counted', async () => {
    const storage = TransportStorage.open(dataDir());
    const store = new SealedAccountStore({ storage, cipher, codec: codecV1 });
    await store.put('dev-2', 'other', { title: 'not mine', password: 'x' }, 1);
    const tries = Array.from({ length: 8 }, (_, i) =>
      store.putWithin('dev-1', `n${i}`, { title: `t${i}`, password: 'x' }, 1000 + i, 3),
    );
    const settled = await Promise.allSettled(tries);
    assert.equal(settled.filter((s) => s.status === 'fulfilled').length, 3);
    for (const s of settled) {
      if (s.status === 'rejected') assert.ok(isCode('policy.too_many_accounts')(s.reason));
    }
    assert.equal(store.count('dev-1'), 3);
    assert.equal(store.count('dev-2'), 1);
    // Replacing an account the device already has is not a new one.
    const kept = store.list('dev-1')[0]!;
    const again = await store.putWithin('dev-1', kept.id, { title: 'renamed', password: 'y' }, 5000, 3);
    assert.equal(again.title, 'renamed');
    assert.equal(again.createdAt, kept.createdAt);
    await store.remove('dev-1', kept.id);
    await store.putWithin('dev-1', 'n-new', { title: 'room again', password: 'z' }, 6000, 3);
    assert.equal(store.count('dev-1'), 3);
    await storage.close();
  });

  test('devices are isolated: ranges, gets and ownership never cross, even for ids sharing a prefix', async () => {
    const storage = TransportStorage.open(dataDir());
    const store = new SealedAccountStore({ storage, cipher, codec: codecV1 });
    for (const deviceId of ['dev', 'dev/x', 'de', 'deva', 'dev\u0000']) {
      await store.put(deviceId, `n-${deviceId.length}`, { title: deviceId, password: 'p' }, 1);
    }
    assert.deepEqual(
      store.list('dev').map((n) => n.title),
      ['dev'],
    );
    assert.deepEqual(
      store.list('dev/x').map((n) => n.title),
      ['dev/x'],
    );
    assert.deepEqual(store.list('nobody'), []);
    assert.equal(store.has('dev', 'n-3'), true);
    assert.equal(store.has('deva', 'n-3'), false, 'another device’s account id');
    assert.throws(() => store.get('dev/x', 'n-3'), isCode('mail.not_found'));
    assert.deepEqual(store.devices().sort(), ['de', 'dev', 'dev\u0000', 'dev/x', 'deva']);
    await store.put('dev', 'n-second', { title: 'dev 2', password: 'p' }, 1);
    assert.deepEqual(
      store.census(),
      new Map([
        ['de', 1],
        ['dev', 2],
        ['dev\u0000', 1],
        ['dev/x', 1],
        ['deva', 1],
      ]),
      'accounts per device, from the keys',
    );
    await storage.close();
  });

  test('a sealed secret opens only under its own account id', async () => {
    const storage = TransportStorage.open(dataDir());
    const store = new SealedAccountStore({ storage, cipher, codec: codecV1 });
    await store.put('dev', 'n1', { title: 't', password: 'secret' }, 1);
    const raw = storage.database<StoredNoteV1>('mail.accounts');
    // Another record made of n1's sealed password (a copy between records, as an attacker with the file could).
    await raw.put(['dev', 'n2'], { ...raw.get(['dev', 'n1'])!, id: 'n2' });
    assert.throws(() => store.get('dev', 'n2'), isCode('credentials.unreadable'));
    await storage.close();
  });

  test('versioned records: older versions are read by a newer codec, a newer version is refused', async () => {
    const storage = TransportStorage.open(dataDir());
    const old = new SealedAccountStore({ storage, cipher, codec: codecV1 });
    await old.put('dev', 'n1', { title: 'from v1', password: 'p1' }, 5);
    const current = new SealedAccountStore({ storage, cipher, codec: codecV2 });
    assert.deepEqual(current.get('dev', 'n1'), {
      id: 'n1',
      deviceId: 'dev',
      title: 'from v1',
      password: 'p1',
      createdAt: 5,
      updatedAt: 5,
    });
    await current.put('dev', 'n2', { title: 'from v2', password: 'p2' }, 6);
    assert.equal(current.get('dev', 'n2').title, 'from v2');
    assert.throws(
      () => old.get('dev', 'n2'),
      (err: unknown) => isCode('internal')(err) && /version 2/.test(String(err)),
    );
    assert.throws(() => old.list('dev'), isCode('internal'));
    await storage.close();
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
    const mail = new LmdbMailAccountStore({ storage, cipher });
    const im = new LmdbImAccountStore({ storage, cipher });
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
      new LmdbMailAccountStore({ storage, cipher }).get('dev-2', 'm00bb').address,
      'bob@example.org',
    );
    assert.equal(new LmdbImAccountStore({ storage, cipher }).get('dev-1', xid).password, 'chat-pw');
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
    const mail = new LmdbMailAccountStore({ storage, cipher });
    assert.equal(mail.get('dev-1', 'm00aa').address, 'newer@example.org', 'the newer record is kept');
    assert.equal(mail.get('dev-2', 'm00bb').address, 'bob@example.org', 'the missing one is copied');
    assert.ok(!existsSync(join(dir, 'transport', 'mail-accounts.mdb')));
    await storage.close();
  });
});
