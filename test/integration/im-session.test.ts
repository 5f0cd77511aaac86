// XmppAccountSession against a real Prosody (test/harness/prosody.ts).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { client, xml } from '@xmpp/client';
import type { GatewayError } from '../../device-protocol/errors.ts';
import {
  type ChatMessage,
  XmppAccountSession,
  type XmppAccountSessionOptions,
  type XmppAccountSettings,
  type XmppAccountState,
} from '../../server/transport/im/xmpp-session.ts';
import { eventually } from '../../testing/index.ts';
import { freePort, type ProsodyServer, startProsody } from '../harness/prosody.ts';

const USERS = [
  { user: 'alice', password: 'alice-pw' },
  { user: 'bob', password: 'bob-pw' },
  { user: 'carol', password: 'carol-pw' },
];

// IM_DEBUG=1 prints the sessions' state changes and errors while a test runs.
const log = (level: string) => (o: unknown, m?: string) =>
  console.log(level, Date.now() % 100_000, m, JSON.stringify(o));
const debugLogger = process.env.IM_DEBUG ? { debug: log('D'), info: log('I'), warn: log('W') } : undefined;

interface Recorded {
  session: XmppAccountSession;
  states: XmppAccountState[];
  errors: string[];
  messages: ChatMessage[];
}

describe('XmppAccountSession against Prosody', { timeout: 180_000 }, () => {
  let prosody: ProsodyServer;
  const sessions: XmppAccountSession[] = [];

  const open = (
    user: string,
    password: string,
    extra: Partial<XmppAccountSettings> = {},
    tuning: Partial<XmppAccountSessionOptions> = {},
  ): Recorded => {
    const rec: Recorded = { states: [], errors: [], messages: [] } as unknown as Recorded;
    rec.session = new XmppAccountSession({
      settings: { jid: prosody.jid(user), password, host: prosody.host, port: prosody.c2sPort, ...extra },
      backoff: { initialMs: 50, maxMs: 500 },
      connectTimeoutMs: 10_000,
      ...tuning,
      ...(debugLogger ? { logger: debugLogger } : {}),
      listener: {
        state: (s, err) => {
          rec.states.push(s);
          if (err) rec.errors.push(err.code);
        },
        message: (m) => rec.messages.push(m),
      },
    });
    sessions.push(rec.session);
    return rec;
  };

  before(async () => {
    prosody = await startProsody({
      domain: 'example.test',
      users: USERS,
      rosters: {
        alice: [{ jid: 'dave@example.test', name: 'Dave "D" Ünal', groups: ['Work', 'Old friends'] }],
      },
    });
  });

  after(async () => {
    await Promise.all(sessions.map((s) => s.stop()));
    await prosody?.stop();
  });

  test('logs in, reports connecting then online', async () => {
    const a = open('alice', 'alice-pw');
    await a.session.start();
    assert.deepEqual(a.states, ['connecting', 'online']);
    assert.equal(a.session.state, 'online');
    // The roster the harness wrote into Prosody's storage comes back with the login.
    const roster = a.session.roster();
    assert.equal(roster.length, 1);
    const [dave] = roster;
    assert.ok(dave);
    assert.deepEqual(
      { ...dave, groups: [...dave.groups].sort() },
      {
        jid: 'dave@example.test',
        name: 'Dave "D" Ünal',
        groups: ['Old friends', 'Work'],
        subscription: 'both',
        presence: 'unavailable',
      },
    );
    await a.session.stop();
    assert.equal(a.states.at(-1), 'stopped');
  });

  test('wrong password → im.auth_failed, and the session stays down', async () => {
    const a = open('alice', 'not-the-password');
    await assert.rejects(a.session.start(), (err: GatewayError) => err.code === 'im.auth_failed');
    assert.deepEqual(a.states, ['connecting', 'auth_failed']);
    assert.throws(() => a.session.send(prosody.jid('bob'), 'x', 'c-x'), { code: 'im.auth_failed' });
  });

  test('nothing listening → im.unreachable', async () => {
    const port = await freePort();
    const a = open('alice', 'alice-pw', { port });
    await assert.rejects(a.session.start(), (err: GatewayError) => err.code === 'im.unreachable');
  });

  test('a domain that does not resolve → im.unknown_domain', async () => {
    const s = new XmppAccountSession({ settings: { jid: 'alice@no-such-domain.invalid', password: 'x' } });
    sessions.push(s);
    await assert.rejects(s.start(), (err: GatewayError) => err.code === 'im.unknown_domain');
  });

  test('a domain this server does not serve → im.unknown_domain', async () => {
    const s = new XmppAccountSession({
      settings: { jid: 'alice@not-served.test', password: 'x', host: prosody.host, port: prosody.c2sPort },
      connectTimeoutMs: 10_000,
    });
    sessions.push(s);
    await assert.rejects(s.start(), (err: GatewayError) => err.code === 'im.unknown_domain');
  });

  test('A sends to B: resolved after the server ack, B gets it once with an archive id', async () => {
    const a = open('alice', 'alice-pw');
    const b = open('bob', 'bob-pw');
    await Promise.all([a.session.start(), b.session.start()]);
    await a.session.send(prosody.jid('bob'), 'hello bob', 'c-1');
    await eventually('bob gets the message', () => b.messages.length >= 1);
    // A second send with the same clientId in flight joins the first; afterwards nothing else arrives.
    await a.session.send(prosody.jid('bob'), 'second', 'c-2');
    await eventually('bob gets the second message', () => b.messages.length >= 2);
    assert.equal(b.messages.length, 2);
    const [m] = b.messages;
    assert.ok(m);
    assert.equal(m.from, 'alice@example.test');
    assert.equal(m.to, 'bob@example.test');
    assert.equal(m.body, 'hello bob');
    assert.equal(m.direction, 'in');
    assert.equal(m.originId, 'c-1');
    assert.ok(m.stanzaId, 'Prosody stamps a stanza-id (mod_mam)');
    assert.ok(!Number.isNaN(Date.parse(m.at)));
  });

  test('a plain client talks to the account and gets its reply; carbons reach the account', async () => {
    const b = open('bob', 'bob-pw');
    await b.session.start();
    const plain = client({
      service: `xmpp://${prosody.host}:${prosody.c2sPort}`,
      domain: prosody.domain,
      username: 'carol',
      password: 'carol-pw',
      resource: 'plain',
    });
    plain.reconnect.stop();
    const got: string[] = [];
    plain.on('error', () => {});
    plain.on('stanza', (el) => {
      if (el.is('message') && el.getChildText('body')) got.push(el.getChildText('body') ?? '');
    });
    await plain.start();
    try {
      await plain.send(xml('presence', {}));
      await plain.send(
        xml('message', { type: 'chat', to: 'bob@example.test' }, xml('body', {}, 'hi from carol')),
      );
      await eventually('bob gets carol', () => b.messages.some((m) => m.body === 'hi from carol'));
      await b.session.send('carol@example.test', 'hi carol', 'c-carol-1');
      await eventually('carol gets the reply', () => got.includes('hi carol'));

      // A second client of bob's own (another resource) sends to carol: the gateway session sees a sent carbon.
      const bob2 = client({
        service: `xmpp://${prosody.host}:${prosody.c2sPort}`,
        domain: prosody.domain,
        username: 'bob',
        password: 'bob-pw',
        resource: 'phone2',
      });
      bob2.reconnect.stop();
      bob2.on('error', () => {});
      await bob2.start();
      try {
        await bob2.iqCaller.set(xml('enable', { xmlns: 'urn:xmpp:carbons:2' }));
        await bob2.send(xml('presence', {}));
        await bob2.send(
          xml(
            'message',
            { type: 'chat', to: 'carol@example.test' },
            xml('body', {}, 'sent from my other client'),
          ),
        );
        await eventually('sent carbon', () => b.messages.some((m) => m.body === 'sent from my other client'));
        const carbon = b.messages.find((m) => m.body === 'sent from my other client');
        assert.equal(carbon?.direction, 'out');
        assert.equal(carbon?.carbon, true);
        assert.equal(carbon?.to, 'carol@example.test');
        assert.equal(carbon?.from, 'bob@example.test');
        // A forged carbon (from carol, not from bob's own account) is dropped.
        await plain.send(
          xml(
            'message',
            { type: 'chat', to: 'bob@example.test' },
            xml(
              'sent',
              { xmlns: 'urn:xmpp:carbons:2' },
              xml(
                'forwarded',
                { xmlns: 'urn:xmpp:forward:0' },
                xml('message', { from: 'bob@example.test', to: 'x@example.test' }, xml('body', {}, 'forged')),
              ),
            ),
          ),
        );
        await plain.send(
          xml('message', { type: 'chat', to: 'bob@example.test' }, xml('body', {}, 'after forged')),
        );
        await eventually('message after the forged carbon', () =>
          b.messages.some((m) => m.body === 'after forged'),
        );
        assert.equal(b.messages.filter((m) => m.body === 'forged').length, 0);
      } finally {
        await bob2.stop().catch(() => {});
      }
    } finally {
      await plain.stop().catch(() => {});
    }
  });

  test('archive catch-up returns exactly the messages after an archive id, in order', async () => {
    const a = open('alice', 'alice-pw');
    const b = open('bob', 'bob-pw');
    await Promise.all([a.session.start(), b.session.start()]);
    const mark = `mam-${Date.now()}`;
    for (let i = 0; i < 5; i++) await a.session.send(prosody.jid('bob'), `${mark} ${i}`, `${mark}-${i}`);
    await eventually(
      'bob gets all five',
      () => b.messages.filter((m) => m.body.startsWith(mark)).length === 5,
    );
    const live = b.messages.filter((m) => m.body.startsWith(mark));
    const cursor = live[1]?.stanzaId;
    assert.ok(cursor);
    const page = await b.session.archive({ after: cursor });
    const bodies = page.messages.filter((m) => m.body.startsWith(mark)).map((m) => m.body);
    assert.deepEqual(bodies, [`${mark} 2`, `${mark} 3`, `${mark} 4`]);
    assert.equal(page.complete, true);
    assert.equal(page.last, page.messages.at(-1)?.stanzaId);
    // The archive id of a live message is the MAM id.
    assert.deepEqual(
      page.messages.map((m) => m.stanzaId),
      live.slice(2).map((m) => m.stanzaId),
    );
    // Nothing after the last one.
    const empty = await b.session.archive({ after: page.last });
    assert.equal(empty.messages.length, 0);
    await assert.rejects(b.session.archive({ after: 'no-such-archive-id' }), { code: 'im.bad_cursor' });
  });

  test('Prosody restarted mid-conversation: retrying then online, nothing lost or doubled', async () => {
    const a = open('alice', 'alice-pw');
    const b = open('bob', 'bob-pw');
    await Promise.all([a.session.start(), b.session.start()]);
    const mark = `restart-${Date.now()}`;
    await a.session.send(prosody.jid('bob'), `${mark} 0`, `${mark}-0`);
    await eventually('first message', () => b.messages.some((m) => m.body === `${mark} 0`));
    const cursor = b.messages.find((m) => m.body === `${mark} 0`)?.stanzaId;
    assert.ok(cursor);

    const restarted = prosody.restart();
    // Sends issued while the server is away are held and go out once the session is back.
    const sends = [1, 2, 3].map((i) => a.session.send(prosody.jid('bob'), `${mark} ${i}`, `${mark}-${i}`));
    await restarted;
    await Promise.all(sends);
    await eventually('both back online', () => a.session.state === 'online' && b.session.state === 'online');
    assert.ok(a.states.includes('retrying'), `alice states: ${a.states.join(',')}`);
    assert.equal(a.states.at(-1), 'online');
    await a.session.send(prosody.jid('bob'), `${mark} 4`, `${mark}-4`);

    const page = await b.session.archive({ after: cursor });
    const bodies = page.messages.filter((m) => m.body.startsWith(mark)).map((m) => m.body);
    assert.deepEqual(
      bodies,
      [1, 2, 3, 4].map((i) => `${mark} ${i}`),
    );
  });

  test('a message the server handled but had not acked at a restart is not sent twice', async () => {
    // No ack request for a long while: the restart falls between "handled" and "acked".
    const a = open('alice', 'alice-pw', {}, { smAckDebounceMs: 60_000, smRequestAckIntervalMs: 60_000 });
    const b = open('bob', 'bob-pw');
    await Promise.all([a.session.start(), b.session.start()]);
    const start = await b.session.archive({});
    const body = `once-${Date.now()}`;
    const sending = a.session.send(prosody.jid('bob'), body, body);
    await eventually('bob has it live', () => b.messages.some((m) => m.body === body));
    await prosody.restart();
    await sending; // settled by the h on <failed/>, not by a resend
    await eventually('both back', () => a.session.state === 'online' && b.session.state === 'online');
    // (alice's session asks for acks only after a minute; a second one sends the next message.)
    const a2 = open('alice', 'alice-pw');
    await a2.session.start();
    await a2.session.send(prosody.jid('bob'), `${body} after`, `${body}-after`);
    await eventually('the next message', () => b.messages.some((m) => m.body === `${body} after`));
    const page = await b.session.archive(
      start.last === undefined ? { keepDuplicates: true } : { after: start.last, keepDuplicates: true },
    );
    assert.deepEqual(
      page.messages.filter((m) => m.body.startsWith(body)).map((m) => m.body),
      [body, `${body} after`],
    );
    assert.equal(b.messages.filter((m) => m.body === body).length, 1);
  });
});
