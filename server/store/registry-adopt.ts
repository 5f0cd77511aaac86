/**
 * A node's registry moving into the cluster: the first time an admin node
 * opens its registry on the shared state, the records its lmdb registry holds
 * from before (a single node turned into a cluster, or an admin node of a
 * release that kept the registry in lmdb) are written into the shared tables,
 * create-if-absent: a key the cluster has already keeps the cluster's record.
 * A mark in the node's lmdb makes it happen once, so that a device removed
 * in the cluster later is not brought back by a restart.
 */
import type { Database } from 'lmdb';
import type { RegistryTable } from './registry-table.ts';
import {
  exportTables,
  type LmdbRegistryDatabases,
  lmdbTables,
  type RegistryTableSet,
} from './registry-tables.ts';

const ADOPTED = 'adoptedIntoSharedState';

/** Returns how many records moved in (0 when already done, or when there were none). */
export async function adoptLocalRecords(
  lmdb: LmdbRegistryDatabases,
  shared: RegistryTableSet,
  meta: Database<unknown, string>,
): Promise<number> {
  if (meta.get(ADOPTED) === 1) return 0;
  let moved = 0;
  for (const r of exportTables(lmdbTables(lmdb))) {
    const table = shared[r.table] as RegistryTable<unknown>;
    const written = await table.change(r.key, (current) =>
      current === undefined ? { put: r.value, result: true } : { result: false },
    );
    if (written) moved += 1;
  }
  await meta.put(ADOPTED, 1);
  return moved;
}
