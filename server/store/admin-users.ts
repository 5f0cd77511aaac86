/**
 * The admin API's users in the registry's `admins` table: scrypt password
 * hashes, roles, and a token epoch that moves on at every password or role
 * change so that older tokens stop working. A change may name who made it:
 * its audit entry goes with the change (audit-outbox.ts; on lmdb in the same
 * transaction).
 */
import { GatewayError } from '../../device-protocol/errors.ts';
import type { AuditActor, AuditOutbox } from './audit-outbox.ts';
import { ADMIN_USER_RECORD_VERSION, type AdminRole, type AdminUserRecordV1 } from './records.ts';
import type { RegistryTable } from './registry-table.ts';
import { ADMIN_PASSWORD_LENGTH, hashPassword, verifyPassword } from './secrets.ts';

export interface AdminUser {
  name: string;
  role: AdminRole;
  createdAt: number;
}

export interface AdminUsersHost {
  admins: RegistryTable<AdminUserRecordV1>;
  outbox: Pick<AuditOutbox, 'put'>;
  now: () => number;
  /** Throws when the registry is closed. */
  assertOpen: () => void;
}

export class AdminUsers {
  constructor(private readonly h: AdminUsersHost) {}

  async add(
    input: { name: string; role: AdminRole; password: string },
    audit?: AuditActor,
  ): Promise<AdminUser> {
    this.h.assertOpen();
    if (!/^[A-Za-z0-9._@-]{1,64}$/.test(input.name ?? '')) {
      throw new GatewayError('registry.invalid_field', 'name: 1-64 letters, digits or . _ @ -', {
        field: 'name',
      });
    }
    assertRole(input.role);
    assertPassword(input.password);
    const record: AdminUserRecordV1 = {
      v: ADMIN_USER_RECORD_VERSION,
      name: input.name,
      role: input.role,
      passwordHash: await hashPassword(input.password),
      createdAt: this.h.now(),
    };
    const added = await this.h.admins.change(
      record.name,
      (current) => (current ? { result: false } : { put: record, result: true }),
      ({ result }) => {
        if (result && audit)
          this.h.outbox.put(audit, 'user.create', `user:${record.name}`, undefined, adminView(record));
      },
    );
    if (!added) throw new GatewayError('registry.duplicate', `an admin user ${input.name} already exists`);
    return adminView(record);
  }

  get(name: string): AdminUser | undefined {
    this.h.assertOpen();
    const record = this.h.admins.get(name);
    return record === undefined ? undefined : adminView(record);
  }

  /**
   * The user and their token epoch: a number that grows at every password or
   * role change, carried in their tokens, so that older tokens stop working.
   */
  getAuth(name: string): { user: AdminUser; tokenEpoch: number } | undefined {
    this.h.assertOpen();
    const record = this.h.admins.get(name);
    if (record === undefined) return undefined;
    return { user: adminView(record), tokenEpoch: record.tokenEpoch ?? 0 };
  }

  list(): AdminUser[] {
    this.h.assertOpen();
    return [...this.h.admins.rows()].map(({ value }) => adminView(value));
  }

  /** The user when name and password match, else undefined (same answer for unknown name and bad password). */
  async verifyPassword(name: string, password: string): Promise<AdminUser | undefined> {
    this.h.assertOpen();
    const record = this.h.admins.get(name);
    if (record === undefined) {
      // Spend the same time as a real check so that timing does not reveal which names exist.
      await verifyPassword(password, DUMMY_HASH);
      return undefined;
    }
    return (await verifyPassword(password, record.passwordHash)) ? adminView(record) : undefined;
  }

  /** Sets a password; the user's tokens stop working (their epoch moves on). */
  async setPassword(name: string, password: string, audit?: AuditActor): Promise<void> {
    assertPassword(password);
    const passwordHash = await hashPassword(password);
    const ok = await this.h.admins.change(
      name,
      (record) =>
        record === undefined
          ? { result: false }
          : {
              put: {
                ...record,
                v: ADMIN_USER_RECORD_VERSION,
                passwordHash,
                tokenEpoch: (record.tokenEpoch ?? 0) + 1,
              },
              result: true,
            },
      ({ result }) => {
        if (result && audit) this.h.outbox.put(audit, 'user.password', `user:${name}`);
      },
    );
    if (!ok) throw new GatewayError('registry.not_found', `no admin user ${name}`);
  }

  /** Gives a user another role; their tokens stop working (they log in again, with the new role). */
  async setRole(
    name: string,
    role: AdminRole,
    audit?: AuditActor,
  ): Promise<{ before: AdminUser; after: AdminUser }> {
    this.h.assertOpen();
    assertRole(role);
    const result = await this.h.admins.change(
      name,
      (record) => {
        if (record === undefined) return { result: undefined };
        const updated: AdminUserRecordV1 = {
          ...record,
          v: ADMIN_USER_RECORD_VERSION,
          role,
          tokenEpoch: (record.tokenEpoch ?? 0) + 1,
        };
        return { put: updated, result: { before: adminView(record), after: adminView(updated) } };
      },
      ({ result: change }) => {
        if (change && audit)
          this.h.outbox.put(audit, 'user.role', `user:${name}`, change.before, change.after);
      },
    );
    if (result === undefined) throw new GatewayError('registry.not_found', `no admin user ${name}`);
    return result;
  }

  async remove(name: string, audit?: AuditActor): Promise<void> {
    const ok = await this.h.admins.change(
      name,
      (record) => (record === undefined ? { result: undefined } : { remove: true, result: record }),
      ({ result: record }) => {
        if (record && audit) this.h.outbox.put(audit, 'user.remove', `user:${name}`, adminView(record));
      },
    );
    if (!ok) throw new GatewayError('registry.not_found', `no admin user ${name}`);
  }
}

const ROLES: readonly AdminRole[] = ['admin', 'operator', 'viewer'];

function assertRole(role: AdminRole): void {
  if (!ROLES.includes(role)) {
    throw new GatewayError('registry.invalid_field', 'role: admin, operator or viewer', { field: 'role' });
  }
}

function assertPassword(password: string): void {
  if (
    typeof password !== 'string' ||
    password.length < ADMIN_PASSWORD_LENGTH.min ||
    password.length > ADMIN_PASSWORD_LENGTH.max
  ) {
    throw new GatewayError(
      'registry.invalid_field',
      `password: at least ${ADMIN_PASSWORD_LENGTH.min} characters`,
      {
        field: 'password',
      },
    );
  }
}

/** A fixed scrypt hash of a random string, for equal-time answers to unknown names. */
const DUMMY_HASH = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

function adminView(r: AdminUserRecordV1): AdminUser {
  return { name: r.name, role: r.role, createdAt: r.createdAt };
}
