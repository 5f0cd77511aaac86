/**
 * What a fuzzing device knows: its own logins, the accounts it added, the
 * folders, UIDs and cursors the gateway showed it. Valid-looking bodies take
 * their ids from here (a random account id reaches nothing but
 * `mail.not_found`), and the isolation check asks whose an id is.
 *
 * Learning is from the gateway's answers only, so the same seed makes the
 * same choices, and the ids they point at are whatever the gateway handed out.
 */
import fc from 'fast-check';
import type { FieldHint } from './schema-arbitrary.ts';

export interface MailLogin {
  address: string;
  password: string;
  imap: { host: string; port: number; tls: 'none'; user: string; password: string };
  smtp: {
    host: string;
    port: number;
    tls: 'starttls';
    allowInvalidCert: true;
    user: string;
    password: string;
  };
}

export interface XmppLogin {
  jid: string;
  password: string;
  host: string;
  port: number;
}

/** Bounded: the newest ids are the likeliest to still exist. */
const KEEP = 64;

export class DeviceKnowledge {
  readonly mailAccounts = new Set<string>();
  readonly imAccounts = new Set<string>();
  readonly folders = new Set<string>(['INBOX']);
  uids: number[] = [];
  cursors: string[] = [];
  /** Attachments mail.body listed: (uid, part) pairs in INBOX. */
  attachments: { uid: number; part: string }[] = [];

  constructor(
    readonly imei: string,
    readonly mail: MailLogin,
    readonly xmpp: XmppLogin,
  ) {}

  owns(account: string): boolean {
    return this.mailAccounts.has(account) || this.imAccounts.has(account);
  }

  /** Takes what an answer to `method` (asked with `body`) teaches. */
  learn(method: string, body: unknown, answer: unknown): void {
    const a = (answer ?? {}) as Record<string, unknown>;
    const b = (body ?? {}) as Record<string, unknown>;
    // mail.* and im.* keep their account lists the same way.
    const service = method.startsWith('mail.') ? this.mailAccounts : this.imAccounts;
    switch (method) {
      case 'mail.account.add':
      case 'im.login':
        if (typeof a.account === 'string') service.add(a.account);
        break;
      case 'mail.account.remove':
      case 'im.logout':
        if (typeof b.account === 'string') service.delete(b.account);
        break;
      case 'mail.accounts':
      case 'im.accounts':
        if (Array.isArray(a.accounts)) {
          service.clear();
          for (const x of a.accounts) if (typeof x?.account === 'string') service.add(x.account);
        }
        break;
      case 'mail.folders':
        if (Array.isArray(a.folders)) {
          for (const f of a.folders) if (typeof f?.path === 'string') this.folders.add(f.path);
        }
        break;
      case 'mail.body':
        if (typeof a.uid === 'number' && Array.isArray(a.attachments)) {
          for (const x of a.attachments) {
            if (typeof x?.part === 'string') this.attachments.push({ uid: a.uid, part: x.part });
          }
          this.attachments = this.attachments.slice(-KEEP);
        }
        break;
      case 'mail.sync':
        for (const uid of uidsOfSync(a)) this.uids.push(uid);
        this.uids = [...new Set(this.uids)].slice(-KEEP);
        if (typeof a.cursor === 'string') this.cursors = [...this.cursors, a.cursor].slice(-KEEP);
        break;
    }
  }
}

/**
 * Fields that only work together: a valid-looking body gets them from one
 * thing the device knows (an attachment is a UID and a part of that message).
 */
export function correlate(
  method: string,
  body: unknown,
  self: DeviceKnowledge,
  pick: <T>(list: readonly T[]) => T,
): void {
  if (method !== 'mail.attachment' || self.attachments.length === 0) return;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return;
  const { uid, part } = pick(self.attachments);
  Object.assign(body, { folder: 'INBOX', uid, part });
}

/** UIDs of a mail.sync answer, in either form (items, or compact columns + rows). */
function uidsOfSync(a: Record<string, unknown>): number[] {
  const out: number[] = [];
  if (Array.isArray(a.items)) for (const h of a.items) if (typeof h?.uid === 'number') out.push(h.uid);
  if (Array.isArray(a.columns) && Array.isArray(a.rows)) {
    const at = a.columns.indexOf('uid');
    if (at >= 0)
      for (const row of a.rows) if (Array.isArray(row) && typeof row[at] === 'number') out.push(row[at]);
  }
  return out;
}

/** What every device knows about the others: addresses and JIDs to write to, and their accounts. */
export interface SharedKnowledge {
  devices: DeviceKnowledge[];
}

/** Account ids of every device but `self`. */
export function foreignAccounts(shared: SharedKnowledge, self: DeviceKnowledge): string[] {
  const out: string[] = [];
  for (const d of shared.devices) {
    if (d === self) continue;
    for (const id of d.mailAccounts) if (!self.owns(id)) out.push(id);
    for (const id of d.imAccounts) if (!self.owns(id)) out.push(id);
  }
  return out;
}

/** One of `list`, read when the value is drawn (the list changes as the device learns). */
function oneOf<T>(list: () => readonly T[], otherwise: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return fc.nat().chain((i) => {
    const now = list();
    return now.length === 0 ? otherwise : fc.constant(now[i % now.length] as T);
  });
}

const FLAGS = ['\\Seen', '\\Flagged', '\\Answered', '\\Draft', '\\Deleted', '$Forwarded', 'Work', '\\Recent'];
const PARTS = ['1', '2', '3', '1.1', '1.2', '2.1', '2.2', '1.1.1', '4'];

/**
 * Field hints for a device's valid-looking bodies: real ids and logins for the
 * fields that name them, so requests reach the handlers and the peers.
 */
export function knowledgeHints(method: string, self: DeviceKnowledge, shared: SharedKnowledge): FieldHint {
  const service = method.slice(0, method.indexOf('.'));
  const mailAddresses = () => shared.devices.map((d) => d.mail.address);
  const jids = () => shared.devices.map((d) => d.xmpp.jid);
  const uid = oneOf(() => self.uids, fc.integer({ min: 1, max: 50 }));
  const recipients = fc.array(oneOf(mailAddresses, fc.constant('nobody@example.test')), {
    minLength: 1,
    maxLength: 3,
  });
  return (path) => {
    const field = path[path.length - 1];
    const top = path.length === 1;
    if (service === 'mail') {
      if (field === 'account' && top) return oneOf(() => [...self.mailAccounts], fc.constant('m0'));
      if ((field === 'folder' || (field === 'to' && method === 'mail.move')) && top) {
        // Mostly INBOX: that is where the UIDs the device knows are.
        return fc.oneof(
          { arbitrary: fc.constant('INBOX'), weight: 3 },
          oneOf(() => [...self.folders], fc.constant('INBOX')),
        );
      }
      if (field === 'uid' && top) return uid;
      if (field === 'uids' && top) return fc.oneof(uid, fc.array(uid, { minLength: 1, maxLength: 4 }));
      if (field === 'cursor' && top)
        return fc.option(
          oneOf(() => self.cursors, fc.constant('')),
          { nil: undefined },
        );
      if (field === 'part' && top) return fc.constantFrom(...PARTS);
      if ((field === 'add' || field === 'remove') && top) {
        return fc.option(fc.subarray(FLAGS, { minLength: 1 }), { nil: undefined });
      }
      if ((field === 'to' || field === 'cc' || field === 'bcc') && top) {
        return field === 'to' ? recipients : fc.option(recipients, { nil: undefined, freq: 3 });
      }
      if (field === 'attachments' && top) {
        const attachment = fc.record({
          name: fc.constantFrom('a.txt', 'photo.jpg', 'x.bin', '../../evil', 'ünï.pdf'),
          type: fc.constantFrom('text/plain', 'image/jpeg', 'application/octet-stream'),
          content: fc.oneof(fc.uint8Array({ maxLength: 4096 }), fc.base64String({ maxLength: 200 })),
        });
        return fc.option(fc.array(attachment, { maxLength: 2 }), { nil: undefined, freq: 2 });
      }
      if (method === 'mail.account.add' && top) {
        if (field === 'address') return fc.constant(self.mail.address);
        if (field === 'imap' || field === 'smtp') {
          const right = self.mail[field];
          return fc.oneof(
            { arbitrary: fc.constant(right), weight: 4 },
            fc.constant({ ...right, password: 'wrong' }),
            fc.record({
              ...Object.fromEntries(Object.entries(right).map(([k, v]) => [k, fc.constant(v)])),
              port: fc.constantFrom(1, right.port),
            }),
          );
        }
        if (field === 'preset') return undefined;
      }
    }
    if (service === 'im') {
      if (field === 'account' && top)
        return oneOf(() => [...self.imAccounts], fc.constant('x0000000000000000'));
      if ((field === 'jid' || field === 'to') && top) {
        if (method === 'im.login') return fc.constant(self.xmpp.jid);
        return oneOf(jids, fc.constant('nobody@example.test'));
      }
      if (method === 'im.login' && top) {
        if (field === 'password') return fc.constantFrom(self.xmpp.password, self.xmpp.password, 'wrong');
        if (field === 'host') return fc.constant(self.xmpp.host);
        if (field === 'port') return fc.constantFrom(self.xmpp.port, self.xmpp.port, 1);
        if (field === 'preset') return undefined;
      }
      if (field === 'groups' && top)
        return fc.option(fc.array(fc.string({ minLength: 1, maxLength: 20 }), { maxLength: 3 }), {
          nil: undefined,
        });
    }
    if (method === 'sys.stream' && top) {
      // A device may ask for a million ticks; a handful keeps the run about the other methods.
      if (field === 'count') return fc.integer({ min: 0, max: 200 });
      if (field === 'intervalMs') return fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined });
    }
    return undefined;
  };
}
