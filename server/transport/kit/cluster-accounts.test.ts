import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { LmdbSharedState } from '../../store/shared/lmdb.ts';
import { cipher, codecV1, type StoredNoteV1 } from '../../../testing/transport/account-store-cases.ts';
import { SealedAccountStore } from './account-store.ts';
import { adoptSharedAccounts, HandoverAccountRecords } from './cluster-accounts.ts';
import { TransportStorage } from './transport-storage.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('the node’s accounts move into the shared table once; a record the table has wins; writes during the move wait', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-handover-'));
  dirs.push(dir);
  const storage = TransportStorage.open(dir);
  const state = new LmdbSharedState(join(dir, 'shared'));
  try {
    // What another node already put into the cluster's table for dev-1's n1.
    const other = new HandoverAccountRecords<StoredNoteV1>(storage, 'mail');
    const seeded = new SealedAccountStore({ records: other, cipher, codec: codecV1 });
    await seeded.put('dev-1', 'n1', { title: 'cluster', password: 'c' }, 1);
    const otherDir = mkdtempSync(join(tmpdir(), 'mmgw-handover-'));
    dirs.push(otherDir);
    await adoptSharedAccounts(state, 'mail', other);
    assert.equal(other.shared, true);

    // This node, still on its lmdb, has its own n1 and n2.
    const otherStorage = TransportStorage.open(otherDir);
    after(() => otherStorage.close());
    const mine = new HandoverAccountRecords<StoredNoteV1>(otherStorage, 'mail');
    const store = new SealedAccountStore({ records: mine, cipher, codec: codecV1 });
    await store.put('dev-1', 'n1', { title: 'local', password: 'l' }, 2);
    await store.put('dev-2', 'n2', { title: 'only here', password: 'p' }, 3);
    assert.equal(mine.shared, false);

    const moving = adoptSharedAccounts(state, 'mail', mine);
    const during = store.put('dev-3', 'n3', { title: 'during', password: 'd' }, 4);
    await moving;
    await during;
    assert.equal(mine.shared, true);
    assert.equal(store.get('dev-1', 'n1').title, 'cluster', 'the table’s record wins');
    assert.equal(store.get('dev-2', 'n2').password, 'p');
    assert.equal(store.get('dev-3', 'n3').title, 'during');
    // Every node reads the same records now.
    assert.deepEqual(seeded.devices().sort(), ['dev-1', 'dev-2', 'dev-3']);
  } finally {
    await state.close();
    await storage.close();
  }
});
