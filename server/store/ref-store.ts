/**
 * Reference data of the admin (operators, profiles, services, capabilities)
 * in the registry's `refs` table, keyed `kind/id` (lmdb: the `refdata`
 * database, keyed [kind, id]). The registry hands in the table, its clock and
 * its closed check (RefStoreHost).
 */
import { GatewayError } from '../../device-protocol/errors.ts';
import type { AuditActor, AuditOutbox } from './audit-outbox.ts';
import type { Decision, RegistryTable } from './registry-table.ts';

/**
 * Reference data of the admin (operators, profiles, services, capabilities):
 * one versioned record per (kind, id); `revision` grows with every change.
 */
export interface RefRecord {
  kind: string;
  id: string;
  revision: number;
  createdAt: number;
  updatedAt: number;
  data: Record<string, unknown>;
}

export const REF_RECORD_VERSION = 1;

export type StoredRef = RefRecord & { v: number };

export interface RefStoreHost {
  refs: RegistryTable<StoredRef>;
  now: () => number;
  /** Throws when the registry is closed. */
  assertOpen: () => void;
  /** Where a change made with an AuditActor (the CLI's) is audited, with the change (lmdb: in its transaction). */
  outbox?: AuditOutbox;
}

/** A record as the admin API and the audit log show it. */
export function refAuditView(r: RefRecord): Record<string, unknown> {
  return { id: r.id, ...r.data, revision: r.revision, createdAt: r.createdAt, updatedAt: r.updatedAt };
}

export class RefStore {
  constructor(private readonly h: RefStoreHost) {}

  list(kind: string): RefRecord[] {
    this.h.assertOpen();
    const out: RefRecord[] = [];
    for (const { value } of this.h.refs.rows({ prefix: `${kind}/` })) out.push(refView(value));
    return out;
  }

  get(kind: string, id: string): RefRecord | undefined {
    this.h.assertOpen();
    const raw = this.h.refs.get(`${kind}/${id}`);
    return raw === undefined ? undefined : refView(raw);
  }

  /**
   * Creates (mode 'create': registry.duplicate if it exists) or replaces (mode
   * 'replace': registry.not_found if absent; when `revision` is given it must be
   * the stored one, else the answer is undefined and nothing is written).
   * Returns the record before and after.
   */
  async put(
    kind: string,
    id: string,
    data: Record<string, unknown>,
    options: { mode: 'create' | 'replace'; revision?: number },
    audit?: AuditActor,
  ): Promise<{ before?: RefRecord; after: RefRecord } | undefined> {
    this.h.assertOpen();
    const { refs } = this.h;
    const now = this.h.now();
    type Answer = { before?: RefRecord; after: RefRecord } | 'exists' | 'missing' | undefined;
    const decide = (raw: StoredRef | undefined): Decision<StoredRef, Answer> => {
      const before = raw === undefined ? undefined : refView(raw);
      if (options.mode === 'create' && before) return { result: 'exists' };
      if (options.mode === 'replace' && !before) return { result: 'missing' };
      if (options.revision !== undefined && before && before.revision !== options.revision)
        return { result: undefined };
      const after: RefRecord = {
        kind,
        id,
        revision: (before?.revision ?? 0) + 1,
        createdAt: before?.createdAt ?? now,
        updatedAt: now,
        data,
      };
      return { put: { ...after, v: REF_RECORD_VERSION }, result: before ? { before, after } : { after } };
    };
    const result = await refs.change(`${kind}/${id}`, decide, ({ result: r }) => {
      if (!audit || !this.h.outbox || r === undefined || typeof r === 'string') return;
      const action = r.before ? 'update' : 'create';
      const was = r.before && refAuditView(r.before);
      this.h.outbox.put(audit, `${kind}.${action}`, `${kind}:${id}`, was, refAuditView(r.after), now);
    });
    if (result === 'exists')
      throw new GatewayError('registry.duplicate', `${kind} ${id} already exists`, { field: 'id' });
    if (result === 'missing')
      throw new GatewayError('registry.not_found', `no ${kind} ${id}`, { field: 'id' });
    return result;
  }

  /** Removes one record; returns what it was. */
  async remove(kind: string, id: string): Promise<RefRecord> {
    this.h.assertOpen();
    const { refs } = this.h;
    const before = await refs.change(`${kind}/${id}`, (raw) =>
      raw === undefined ? { result: undefined } : { remove: true, result: refView(raw) },
    );
    if (!before) throw new GatewayError('registry.not_found', `no ${kind} ${id}`, { field: 'id' });
    return before;
  }
}

export function refView(raw: RefRecord & { v?: number }): RefRecord {
  // v1 is the only version so far; a newer release only adds fields, which are kept in data.
  return {
    kind: raw.kind,
    id: raw.id,
    revision: raw.revision,
    createdAt: raw.createdAt,
    updatedAt: raw.updatedAt,
    data: raw.data ?? {},
  };
}
