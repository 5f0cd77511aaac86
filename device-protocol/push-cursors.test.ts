/**
 * Unit tests of PushCursors against a fake handset: a small model of a
 * mailbox (UIDs, cursors "c<uid>") and of a chat archive (ids "a<n>"),
 * answering mail.sync and im.catchup as the gateway does, and pushes fed in
 * by hand, with and without gaps, before, during and after a re-sync.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventually } from '../testing/index.ts';
import { TypedEmitter } from './emitter.ts';
import { GatewayError } from './errors.ts';
import type { HandsetConnectedEvent, HandsetPushEvent } from './handset-types.ts';
import type { Value } from './messages.ts';
import {
  type ChatItem,
  type CursorHandset,
  type MailItem,
  PushCursors,
  readStoredCursors,
  type StoredCursors,
} from './push-cursors.ts';

type Body = { [key: string]: Value };
type Handler = (body: Body) => Value | Promise<Value>;

class FakeHandset implements CursorHandset {
  readonly #emitter = new TypedEmitter<{ event: HandsetPushEvent; connected: HandsetConnectedEvent }>();
  readonly calls: { method: string; body: Body }[] = [];
  readonly handlers = new Map<string, Handler>();
  #seq = 0;
  welcome: unknown;

  on(name: 'event' | 'connected', fn: (e: never) => void): () => void {
    return this.#emitter.on(name, fn as (e: HandsetPushEvent | HandsetConnectedEvent) => void);
  }

  async request<T = Value>(method: string, body?: Value): Promise<T> {
    const b = (body ?? {}) as Body;
    this.calls.push({ method, body: b });
    const handler = this.handlers.get(method);
    if (!handler) throw new GatewayError('request.unknown_method');
    return (await handler(b)) as T;
  }

  connected(resumed = false): void {
    this.#emitter.emit('connected', { sessionId: 's', transport: 'ws', resumed, url: 'ws://gateway.test' });
  }

  push(name: string, body: Body): void {
    this.#emitter.emit('event', { name, body, seq: ++this.#seq });
  }

  callsOf(method: string): Body[] {
    return this.calls.filter((c) => c.method === method).map((c) => c.body);
  }
}

/** A held answer: the test decides when a request returns. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

const header = (uid: number): Body => ({ uid, subject: `m${uid}` });

/** INBOX of account "m1": UIDs 1..highest; cursor "c<uid>" = everything up to uid. */
class Mailbox {
  highest = 0;
  readonly uidOf = (cursor: unknown) => (typeof cursor === 'string' ? Number(cursor.slice(1)) : undefined);

  sync: Handler = (body) => {
    const from = this.uidOf(body.cursor);
    const all = Array.from({ length: this.highest }, (_, i) => i + 1);
    const uids = from === undefined ? all.slice(-Number(body.limit)).reverse() : all.filter((u) => u > from);
    return {
      items: uids.map(header),
      changed: [],
      vanished: [],
      cursor: `c${this.highest}`,
      reset: false,
      more: false,
    };
  };

  /** The push the gateway sends for a new message, following `prev`. */
  arrive(prevUid: number | null): Body {
    this.highest++;
    return {
      account: 'm1',
      folder: 'INBOX',
      header: header(this.highest),
      cursor: `c${this.highest}`,
      prev: prevUid === null ? null : `c${prevUid}`,
    };
  }
}

/** Chat archive of account "x1": ids a1, a2, …; a catch-up pages `max` at a time. */
class ChatArchive {
  readonly ids: string[] = [];
  /** Messages the archive does not keep (pushed, never in a catch-up). */
  readonly unarchived = new Set<string>();

  catchup: Handler = (body) => {
    const kept = this.ids.filter((id) => !this.unarchived.has(id));
    const start =
      body.after === undefined
        ? Math.max(0, kept.length - Number(body.max))
        : kept.indexOf(String(body.after)) + 1;
    const page = kept.slice(start, start + Number(body.max));
    const last = page.at(-1);
    return {
      account: 'x1',
      messages: page.map((id) => this.message(id)),
      ...(last === undefined ? {} : { last }),
      complete: body.after === undefined || start + page.length >= kept.length,
    };
  };

  message(id: string): Body {
    return {
      account: 'x1',
      from: 'bob@example.test',
      to: 'alice@example.test',
      body: id,
      stanzaId: id,
      at: '2026-12-07T00:00:00.000Z',
      direction: 'in',
    };
  }

  arrive(prev: string | null): Body {
    const id = `a${this.ids.length + 1}`;
    this.ids.push(id);
    return { ...this.message(id), prev };
  }
}

interface Setup {
  handset: FakeHandset;
  cursors: PushCursors;
  mail: number[];
  chat: string[];
  snapshots: StoredCursors[];
  errors: GatewayError[];
}

function setup(handset: FakeHandset, options: ConstructorParameters<typeof PushCursors>[1] = {}): Setup {
  const cursors = new PushCursors(handset, { backoff: { initialMs: 1, maxMs: 5 }, ...options });
  const out: Setup = { handset, cursors, mail: [], chat: [], snapshots: [], errors: [] };
  cursors.on('mail', (e: MailItem) => out.mail.push(e.header.uid));
  cursors.on('chat', (e: ChatItem) => out.chat.push(String(e.message.stanzaId)));
  cursors.on('cursors', (s) => out.snapshots.push(s));
  cursors.on('error', (e) => out.errors.push(e));
  return out;
}

function fakeGateway(mailbox: Mailbox, archive: ChatArchive): FakeHandset {
  const handset = new FakeHandset();
  handset.handlers.set('mail.accounts', () => ({ accounts: [{ account: 'm1' }] }));
  handset.handlers.set('im.accounts', () => ({ accounts: [{ account: 'x1' }] }));
  handset.handlers.set('mail.sync', mailbox.sync);
  handset.handlers.set('im.catchup', archive.catchup);
  return handset;
}

/** A gateway with an empty INBOX and archive, past the first session's sync of both streams. */
async function started(options: ConstructorParameters<typeof PushCursors>[1] = {}) {
  const mailbox = new Mailbox();
  const archive = new ChatArchive();
  const handset = fakeGateway(mailbox, archive);
  const s = setup(handset, options);
  handset.connected(false);
  await eventually(
    'the first sync',
    () => handset.callsOf('im.catchup').length === 1 && s.snapshots.length > 0 && !s.cursors.busy,
  );
  return { mailbox, archive, handset, s };
}

/** Holds the answers to `method` until open() is called. */
function hold(handset: FakeHandset, method: string): () => void {
  const held = gate();
  const answer = handset.handlers.get(method)!;
  handset.handlers.set(method, async (body) => {
    await held.wait;
    return answer(body);
  });
  return held.open;
}

describe('PushCursors', () => {
  test('stored cursors: the first session syncs from them and hands on only what is newer', async () => {
    const mailbox = new Mailbox();
    mailbox.highest = 5;
    const archive = new ChatArchive();
    for (let i = 0; i < 4; i++) archive.arrive(null);
    const handset = fakeGateway(mailbox, archive);
    const s = setup(handset, {
      cursors: {
        version: 1,
        mail: [{ account: 'm1', folder: 'INBOX', cursor: 'c3', uid: 3 }],
        chat: [{ account: 'x1', cursor: 'a2' }],
      },
    });
    handset.connected(false);
    await eventually('both streams synced', () => s.mail.length === 2 && s.chat.length === 2);
    assert.deepEqual(s.mail, [4, 5]);
    assert.deepEqual(s.chat, ['a3', 'a4']);
    assert.equal(handset.callsOf('mail.sync')[0]?.cursor, 'c3');
    assert.equal(handset.callsOf('im.catchup')[0]?.after, 'a2');
    assert.deepEqual(s.cursors.snapshot(), {
      version: 1,
      mail: [{ account: 'm1', folder: 'INBOX', cursor: 'c5', uid: 5 }],
      chat: [{ account: 'x1', cursor: 'a4' }],
    });
    assert.deepEqual(
      s.snapshots.at(-1),
      s.cursors.snapshot(),
      'the last cursors event is the state to persist',
    );
  });

  test('pushes that follow the cursor are handed on at once; a gap re-syncs before anything newer', async () => {
    const { mailbox, archive, handset, s } = await started();
    handset.push('mail.new', mailbox.arrive(0));
    handset.push('mail.new', mailbox.arrive(1));
    assert.deepEqual(s.mail, [1, 2]);
    const syncs = handset.callsOf('mail.sync').length;
    // 3 and 4 never reach the device (bus down); 5 follows 4.
    mailbox.arrive(2);
    mailbox.arrive(3);
    handset.push('mail.new', mailbox.arrive(4));
    await eventually('the gap filled', () => s.mail.length === 5);
    assert.deepEqual(s.mail, [1, 2, 3, 4, 5]);
    assert.equal(handset.callsOf('mail.sync').length, syncs + 1);
    assert.equal(handset.callsOf('mail.sync').at(-1)?.cursor, 'c2', 'from the last good cursor');
    handset.push('mail.new', mailbox.arrive(5));
    assert.deepEqual(s.mail, [1, 2, 3, 4, 5, 6]);

    handset.push('im.message', archive.arrive(null));
    await eventually('a null prev catches up', () => s.chat.length === 1);
    handset.push('im.message', archive.arrive('a1'));
    archive.arrive('a2');
    handset.push('im.message', archive.arrive('a3'));
    await eventually('the chat gap filled', () => s.chat.length === 4);
    assert.deepEqual(s.chat, ['a1', 'a2', 'a3', 'a4']);
    assert.deepEqual(s.errors, []);
  });

  test('overlap: pushes during a re-sync wait for it; what it brought is not handed on twice', async () => {
    const { mailbox, archive, handset, s } = await started();
    handset.push('mail.new', mailbox.arrive(0));
    mailbox.arrive(1); // lost
    const open = hold(handset, 'mail.sync');
    handset.push('mail.new', mailbox.arrive(2)); // gap: re-sync from c1, held
    await eventually('the re-sync asked', () => handset.callsOf('mail.sync').at(-1)?.cursor === 'c1');
    // Meanwhile: 4 arrives (the sync will bring it too), then 5 (after the sync's answer).
    handset.push('mail.new', mailbox.arrive(3));
    open();
    await eventually('the re-sync answered', () => s.mail.length >= 4);
    handset.push('mail.new', mailbox.arrive(4));
    await eventually('all five', () => s.mail.length === 5);
    assert.deepEqual(s.mail, [1, 2, 3, 4, 5]);

    // Chat: the catch-up's page and a push carry the same message.
    handset.push('im.message', archive.arrive(null));
    await eventually('a1', () => s.chat.length === 1);
    archive.arrive('a1'); // lost
    const openChat = hold(handset, 'im.catchup');
    handset.push('im.message', archive.arrive('a2'));
    await eventually('the catch-up asked', () => handset.callsOf('im.catchup').at(-1)?.after === 'a1');
    handset.push('im.message', archive.arrive('a3'));
    handset.push('im.message', archive.arrive('a4'));
    openChat();
    await eventually('a1..a5', () => s.chat.length === 5);
    assert.deepEqual(s.chat, ['a1', 'a2', 'a3', 'a4', 'a5']);
  });

  test('resumed: false re-syncs every stream by itself; resumed: true does not', async () => {
    const { mailbox, archive, handset, s } = await started();
    handset.push('mail.new', mailbox.arrive(0));
    handset.push('im.message', archive.arrive(null));
    await eventually('first items', () => s.mail.length === 1 && s.chat.length === 1);
    const before = handset.calls.length;
    handset.connected(true);
    assert.equal(handset.calls.length, before, 'a resumed session lost nothing');
    // The edge died: these never came as pushes.
    mailbox.arrive(1);
    mailbox.arrive(2);
    archive.arrive('a1');
    handset.connected(false);
    await eventually('caught up', () => s.mail.length === 3 && s.chat.length === 2);
    assert.deepEqual(s.mail, [1, 2, 3]);
    assert.deepEqual(s.chat, ['a1', 'a2']);
    // The pushes of the new session follow the re-synced cursors.
    handset.push('mail.new', mailbox.arrive(3));
    handset.push('im.message', archive.arrive('a2'));
    assert.deepEqual(s.mail, [1, 2, 3, 4]);
    assert.deepEqual(s.chat, ['a1', 'a2', 'a3']);
  });

  test('pushes during the account lookup wait for it; a gateway without prev is taken as it comes', async () => {
    const mailbox = new Mailbox();
    const archive = new ChatArchive();
    const handset = fakeGateway(mailbox, archive);
    const held = gate();
    handset.handlers.set('im.accounts', async () => {
      await held.wait;
      return { accounts: [{ account: 'x1' }] };
    });
    const s = setup(handset);
    handset.connected(false);
    const { prev: _a, ...old1 } = archive.arrive(null);
    handset.push('im.message', old1);
    assert.deepEqual(s.chat, []);
    held.open();
    await eventually('a1 once', () => s.chat.length === 1 && handset.callsOf('im.catchup').length === 1);
    const { prev: _b, ...old2 } = archive.arrive(null);
    handset.push('im.message', old2);
    assert.deepEqual(s.chat, ['a1', 'a2']);
    assert.equal(handset.callsOf('im.catchup').length, 1, 'no prev field: no catch-up');
  });

  test('a message the archive does not keep is handed on after one catch-up that brought nothing', async () => {
    const { archive, handset, s } = await started();
    const pushed = archive.arrive('a0');
    archive.unarchived.add('a1');
    handset.push('im.message', pushed);
    await eventually('a1 handed on', () => s.chat.length === 1);
    assert.deepEqual(s.chat, ['a1']);
    assert.ok(handset.callsOf('im.catchup').length <= 3, 'no endless catch-up');
  });

  test('an account added later is tracked from its first online state', async () => {
    const { mailbox, handset, s } = await started();
    mailbox.highest = 2;
    handset.push('mail.account.state', { account: 'm2', state: 'online' });
    await eventually('m2 synced', () => s.cursors.snapshot().mail.some((m) => m.account === 'm2'));
    assert.deepEqual(s.mail, [1, 2], 'its newest headers, once');
    const syncs = handset.callsOf('mail.sync').length;
    handset.push('mail.account.state', { account: 'm2', state: 'online' });
    handset.push('mail.account.state', { account: 'm1', state: 'online' });
    assert.equal(handset.callsOf('mail.sync').length, syncs, 'known accounts are not synced again');
  });

  test('outgoing chat messages move the cursor but are items only with outgoing: all', async () => {
    for (const outgoing of ['none', 'all'] as const) {
      const { archive, handset, s } = await started({ outgoing });
      handset.push('im.message', archive.arrive(null));
      await eventually('a1', () => s.chat.length === 1);
      handset.push('im.message', { ...archive.arrive('a1'), direction: 'out', carbon: true });
      assert.equal(s.cursors.snapshot().chat[0]?.cursor, 'a2');
      assert.deepEqual(s.chat, outgoing === 'all' ? ['a1', 'a2'] : ['a1']);
    }
  });

  test('a cursor the gateway cannot read syncs afresh; a failing sync is tried again', async () => {
    const mailbox = new Mailbox();
    mailbox.highest = 3;
    const archive = new ChatArchive();
    const handset = fakeGateway(mailbox, archive);
    let failures = 2;
    handset.handlers.set('mail.sync', (body) => {
      if (body.cursor === 'bogus') throw new GatewayError('mail.bad_cursor');
      if (failures-- > 0) throw new GatewayError('request.unavailable');
      return mailbox.sync(body);
    });
    const s = setup(handset, {
      cursors: { version: 1, mail: [{ account: 'm1', folder: 'INBOX', cursor: 'bogus', uid: 2 }], chat: [] },
    });
    handset.connected(false);
    await eventually('synced after the failures', () => s.cursors.snapshot().mail[0]?.cursor === 'c3');
    assert.deepEqual(s.mail, [3], 'UIDs handed on before stay dropped');
  });

  test('an account the gateway no longer has is given up; a malformed push is an error, nothing else', async () => {
    const handset = fakeGateway(new Mailbox(), new ChatArchive());
    handset.handlers.set('im.accounts', () => ({ accounts: [] }));
    handset.handlers.set('mail.sync', (body) =>
      body.account === 'gone' ? Promise.reject(new GatewayError('mail.not_found')) : new Mailbox().sync(body),
    );
    const s = setup(handset, {
      cursors: { version: 1, mail: [{ account: 'gone', folder: 'INBOX', cursor: 'c1', uid: 1 }], chat: [] },
    });
    handset.connected(false);
    await eventually(
      'given up, the other synced',
      () => s.errors.some((e) => e.code === 'mail.not_found') && s.cursors.snapshot().mail.length === 1,
    );
    assert.deepEqual(
      s.cursors.snapshot().mail.map((m) => m.account),
      ['m1'],
    );
    handset.push('mail.new', { account: 'm1', folder: 'INBOX', header: { uid: 'x' } });
    handset.push('im.message', [1, 2] as unknown as Body);
    assert.deepEqual(
      s.errors.slice(1).map((e) => [e.code, e.field]),
      [
        ['protocol.bad_frame', 'header.uid'],
        ['protocol.bad_frame', 'account'],
      ],
    );
    for (let i = 0; i < 1000; i++)
      handset.push('mail.new', { account: `m${i}`, folder: 'x', header: { uid: 1 } });
    // One stream (m1 INBOX) was kept: 999 more fit, the last push is refused.
    assert.equal(s.mail.length, 999);
    assert.deepEqual(
      s.errors.slice(3).map((e) => e.field),
      ['account'],
    );
    s.cursors.stop();
  });
});

describe('readStoredCursors', () => {
  test('reads version 1, uid defaulting to 0', () => {
    assert.deepEqual(
      readStoredCursors(
        JSON.parse(
          '{"version":1,"mail":[{"account":"m","folder":"INBOX","cursor":"s1.x"}],"chat":[{"account":"x","cursor":"a"}]}',
        ),
      ),
      {
        version: 1,
        mail: [{ account: 'm', folder: 'INBOX', cursor: 's1.x', uid: 0 }],
        chat: [{ account: 'x', cursor: 'a' }],
      },
    );
  });

  test('refuses what it cannot read, naming the field', () => {
    const cases: [unknown, string][] = [
      [null, 'cursors'],
      [{ version: 2 }, 'version'],
      [{ version: 1, mail: {} }, 'mail'],
      [{ version: 1, mail: [{ account: 'm', folder: 'INBOX' }] }, 'mail[0]'],
      [{ version: 1, mail: [{ account: 'm', folder: 'INBOX', cursor: 'c', uid: -1 }] }, 'mail[0].uid'],
      [{ version: 1, chat: [{ account: 1, cursor: 'a' }] }, 'chat[0]'],
    ];
    for (const [value, field] of cases) {
      assert.throws(
        () => readStoredCursors(value),
        (e: unknown) => e instanceof GatewayError && e.code === 'config.invalid' && e.field === field,
        field,
      );
    }
  });
});
