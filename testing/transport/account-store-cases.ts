/**
 * The SealedAccountStore cases every records backend passes: the node's lmdb
 * (server/transport/kit/account-store.test.ts) and the cluster's shared state
 * on a real nats-server with JetStream (test/integration/account-store-nats.test.ts).
 * Each case gets a fresh, empty place to keep records in.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { GatewayError } from '../../device-protocol/errors.ts';
import { CredentialCipher } from '../../server/transport/credentials.ts';
import {
  type AccountCodec,
  type AccountRecords,
  SealedAccountStore,
  type StoredAccount,
} from '../../server/transport/kit/account-store.ts';

export interface Note {
  id: string;
  deviceId: string;
  title: string;
  password: string;
  createdAt: number;
  updatedAt: number;
}
type NoteInput = Pick<Note, 'title' | 'password'>;
export interface StoredNoteV1 extends StoredAccount {
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

export const codecV1: AccountCodec<Note, NoteInput, StoredNoteV1> = {
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

export const cipher = new CredentialCipher(randomBytes(32));
export const isCode = (code: string) => (err: unknown) => err instanceof GatewayError && err.code === code;

/** One empty place for records; every store made from it sees the same records. */
export interface AccountPlace {
  records(): AccountRecords<any>;
  /** Writes a raw record under [deviceId, record.id], as someone holding the store of record could. */
  forge(deviceId: string, record: StoredAccount): Promise<void>;
  /** Closes and opens the place again (a restart), if the backend can. */
  reopen?(): Promise<void>;
  close(): Promise<void>;
}

export interface AccountStoreCase {
  name: string;
  run(place: AccountPlace): Promise<void>;
}

const storeOn = <S extends StoredAccount>(place: AccountPlace, codec: AccountCodec<Note, NoteInput, S>) =>
  new SealedAccountStore<Note, NoteInput, S>({ records: place.records(), cipher, codec });

export const accountStoreCases: AccountStoreCase[] = [
  {
    name: 'round trip: put, get, list, remove; createdAt kept on a second put; read again after a reopen',
    async run(place) {
      const store = storeOn(place, codecV1);
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
      assert.equal(await store.remove('dev-1', 'n1'), true);
      assert.equal(await store.remove('dev-1', 'n1'), false, 'gone already');
      assert.throws(() => store.get('dev-1', 'n1'), isCode('mail.not_found'));
      if (place.reopen) {
        await place.reopen();
        assert.equal(storeOn(place, codecV1).get('dev-1', 'n2').title, 'second');
      }
    },
  },
  {
    name: 'putWithin: a device holds at most `max` accounts, even when its adds race; others are not counted',
    async run(place) {
      const store = storeOn(place, codecV1);
      await store.put('dev-2', 'other', { title: 'not mine', password: 'x' }, 1);
      const tries = Array.from({ length: 8 }, (_, i) =>
        store.putWithin('dev-1', `n${i}`, { title: `t${i}`, password: 'x' }, 1000 + i, 3),
      );
      const settled = await Promise.allSettled(tries);
      assert.equal(settled.filter((s) => s.status === 'fulfilled').length, 3);
      for (const s of settled) {
        if (s.status === 'rejected')
          assert.ok(isCode('policy.too_many_accounts')(s.reason), String(s.reason));
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
    },
  },
  {
    name: 'devices are isolated: ranges, gets and ownership never cross, even for ids sharing a prefix',
    async run(place) {
      const store = storeOn(place, codecV1);
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
        new Map([...store.census()].sort(([a], [b]) => (a < b ? -1 : 1))),
        new Map([
          ['de', 1],
          ['dev', 2],
          ['dev\u0000', 1],
          ['dev/x', 1],
          ['deva', 1],
        ]),
        'accounts per device, from the keys',
      );
    },
  },
  {
    name: 'a sealed secret opens only under its own account id',
    async run(place) {
      const store = storeOn(place, codecV1);
      await store.put('dev', 'n1', { title: 't', password: 'secret' }, 1);
      const n1 = place.records().get('dev', 'n1') as StoredNoteV1;
      // Another record made of n1's sealed password (a copy between records, as an attacker with the store could).
      await place.forge('dev', { ...n1, id: 'n2' });
      assert.throws(() => storeOn(place, codecV1).get('dev', 'n2'), isCode('credentials.unreadable'));
    },
  },
  {
    name: 'versioned records: older versions are read by a newer codec, a newer version is refused',
    async run(place) {
      const old = storeOn(place, codecV1);
      await old.put('dev', 'n1', { title: 'from v1', password: 'p1' }, 5);
      const current = storeOn(place, codecV2);
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
    },
  },
];
