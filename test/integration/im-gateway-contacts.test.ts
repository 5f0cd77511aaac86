/**
 * Chat through a real gateway process (every role, in-process bus) and the
 * Handset SDK against a private Prosody, the parts of issue 4 beyond sending
 * and catching up: contacts added and removed with roster pushes; incoming
 * subscription requests accepted and denied; delivery receipts (XEP-0184)
 * and typing notifications (XEP-0085) both ways with plain XMPP clients; a
 * 500-contact roster coming online, coalesced; hostile stanzas from a
 * contact giving bounded, sanitised results without a crash.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type XmlElement, type XmppClient, xml } from '@xmpp/client';
import type { Handset } from '../../device-protocol/handset.ts';
import { applyScramSpeedup } from '../../server/transport/im/xmpp/scram-speedup.ts';
import { eventually } from '../../testing/index.ts';
import { type Gateway, provisionDevice, startGateway } from '../harness/gateway.ts';
import { cloneAccounts, plainXmppClient, type ProsodyServer, startProsody } from '../harness/prosody.ts';
import { handsetFor, WAIT } from './e2e-suite.ts';
import { monotonicAcks } from './im-gateway-app.ts';

applyScramSpeedup();

const DOMAIN = 'example.test';
const PW = 'contacts-pw';
const CONTACTS = 500;
const contactName = (i: number) => `k${String(i).padStart(4, '0')}`;
const RECEIPTS = 'urn:xmpp:receipts';
const CHATSTATES = 'http://jabber.org/protocol/chatstates';

interface Plain {
  x: XmppClient;
  stanzas: XmlElement[];
}

describe('chat through the gateway: contacts, receipts, typing, big rosters, hostile contacts', {
  timeout: 300_000,
}, () => {
  let prosody: ProsodyServer;
  let gw: Gateway;
  let h: Handset;
  let acc: string;
  const events: Array<{ name: string; body: any }> = [];
  const plains: XmppClient[] = [];
  const handsets: Handset[] = [];

  const plain = async (user: string, resource = 'desk', presence = true): Promise<Plain> => {
    const x = await plainXmppClient({ port: prosody.c2sPort, domain: DOMAIN, user, password: PW, resource });
    monotonicAcks(x);
    const stanzas: XmlElement[] = [];
    x.on('stanza', (el) => stanzas.push(el));
    plains.push(x);
    // As real clients do; Prosody sends subscription answers only to resources that asked for the roster.
    await x.iqCaller.get(xml('query', { xmlns: 'jabber:iq:roster' }));
    if (presence) await x.send(xml('presence', {}));
    return { x, stanzas };
  };
  const pushed = (name: string) => events.filter((e) => e.name === name).map((e) => e.body);
  const login = async (handset: Handset, user: string) =>
    (
      await handset.request<any>('im.login', {
        jid: `${user}@${DOMAIN}`,
        password: PW,
        host: prosody.host,
        port: prosody.c2sPort,
      })
    ).account as string;

  before(async () => {
    const contacts = Array.from({ length: CONTACTS }, (_, i) => contactName(i));
    const mutual = (user: string) => ({ jid: `${user}@${DOMAIN}`, subscription: 'both' as const });
    const rosters: Record<string, Array<{ jid: string; subscription: 'both'; name?: string }>> = {
      alice: [{ ...mutual('dave'), name: 'Dave' }],
      dave: [mutual('alice')],
      big: contacts.map(mutual),
    };
    for (const c of contacts) rosters[c] = [mutual('big')];
    prosody = await startProsody({
      domain: DOMAIN,
      users: ['alice', 'dave', 'erin', 'frank', 'grace', 'mallory', 'big', contacts[0]!].map((user) => ({
        user,
        password: PW,
      })),
      rosters,
    });
    // Same password for every contact: one registered account file, copied (SCRAM keys do not depend on the name).
    cloneAccounts(prosody, contacts[0]!, contacts.slice(1));
    gw = await startGateway({});
    const dev = await provisionDevice(gw.dataDir);
    h = handsetFor(gw, dev);
    handsets.push(h);
    h.on('event', (e) => events.push({ name: e.name, body: e.body }));
    await h.connect();
    acc = await login(h, 'alice');
  });
  after(async () => {
    for (const handset of handsets) await handset.close().catch(() => {});
    await Promise.all(plains.map((x) => x.stop().catch(() => {})));
    await gw?.stop();
    await prosody?.stop();
  });

  test('im.contact.add and im.contact.remove, with roster pushes', async () => {
    const erin = await plain('erin');
    const added = await h.request<any>('im.contact.add', {
      account: acc,
      jid: `erin@${DOMAIN}`,
      name: 'Erin',
      groups: ['Work'],
    });
    assert.deepEqual(added, { account: acc, jid: `erin@${DOMAIN}` });
    await eventually(
      'roster push with erin',
      () => pushed('im.roster.changed').some((b) => b.items.some((i: any) => i.jid === `erin@${DOMAIN}`)),
      WAIT,
    );
    const push = pushed('im.roster.changed')
      .flatMap((b) => b.items)
      .find((i: any) => i.jid === `erin@${DOMAIN}`);
    assert.equal(push.name, 'Erin');
    assert.deepEqual(push.groups, ['Work']);
    assert.equal(pushed('im.roster.changed')[0].account, acc);
    // The subscription request went out to erin.
    await eventually(
      'subscribe at erin',
      () => erin.stanzas.some((s) => s.is('presence') && s.attrs.type === 'subscribe'),
      WAIT,
    );
    const sub = erin.stanzas.find((s) => s.is('presence') && s.attrs.type === 'subscribe')!;
    assert.equal(String(sub.attrs.from).split('/')[0], `alice@${DOMAIN}`);
    // Erin accepts: the server pushes the new subscription state, and her presence follows.
    await erin.x.send(xml('presence', { to: `alice@${DOMAIN}`, type: 'subscribed' }));
    await eventually(
      'subscription "to" pushed',
      () =>
        pushed('im.roster.changed').some((b) =>
          b.items.some((i: any) => i.jid === `erin@${DOMAIN}` && ['to', 'both'].includes(i.subscription)),
        ),
      WAIT,
    );
    await eventually(
      'erin presence',
      () =>
        pushed('im.presence').some((b) =>
          b.items.some((i: any) => i.jid === `erin@${DOMAIN}` && i.show === 'available'),
        ),
      WAIT,
    );
    let roster = await h.request<any>('im.roster', { account: acc });
    const item = roster.items.find((i: any) => i.jid === `erin@${DOMAIN}`);
    assert.equal(item.name, 'Erin');
    assert.equal(item.presence, 'available');

    const removed = await h.request<any>('im.contact.remove', { account: acc, jid: `erin@${DOMAIN}` });
    assert.deepEqual(removed, { account: acc, jid: `erin@${DOMAIN}` });
    await eventually(
      'removal pushed',
      () =>
        pushed('im.roster.changed').some((b) =>
          b.items.some((i: any) => i.jid === `erin@${DOMAIN}` && i.subscription === 'remove'),
        ),
      WAIT,
    );
    roster = await h.request<any>('im.roster', { account: acc });
    assert.ok(!roster.items.some((i: any) => i.jid === `erin@${DOMAIN}`));
    assert.ok(roster.items.some((i: any) => i.jid === `dave@${DOMAIN}`));
  });

  test('an incoming subscription request is pushed as im.subscription; accept and deny', async () => {
    const frank = await plain('frank');
    const grace = await plain('grace');
    await frank.x.send(xml('presence', { to: `alice@${DOMAIN}`, type: 'subscribe' }));
    await grace.x.send(xml('presence', { to: `alice@${DOMAIN}`, type: 'subscribe' }));
    const requests = () => pushed('im.subscription').filter((r) => r.kind === 'subscribe');
    await eventually('two subscription requests', () => requests().length >= 2, WAIT);
    assert.deepEqual(
      requests()
        .map((r) => r.from)
        .sort(),
      [`frank@${DOMAIN}`, `grace@${DOMAIN}`],
    );
    for (const r of requests()) {
      assert.equal(r.kind, 'subscribe');
      assert.equal(r.account, acc);
    }

    const accepted = await h.request<any>('im.subscription.answer', {
      account: acc,
      jid: `frank@${DOMAIN}`,
      accept: true,
    });
    assert.deepEqual(accepted, { account: acc, jid: `frank@${DOMAIN}`, accept: true });
    // Frank is told yes, gets alice's presence, and is asked back (mutual).
    const aliceAvailable = (p: Plain) =>
      p.stanzas.some(
        (s) => s.is('presence') && !s.attrs.type && String(s.attrs.from).startsWith(`alice@${DOMAIN}/`),
      );
    await eventually(
      'subscribed at frank',
      () => frank.stanzas.some((s) => s.is('presence') && s.attrs.type === 'subscribed'),
      WAIT,
    );
    await eventually("alice's presence at frank", () => aliceAvailable(frank), WAIT);
    await eventually(
      'alice asks frank back',
      () => frank.stanzas.some((s) => s.is('presence') && s.attrs.type === 'subscribe'),
      WAIT,
    );
    await eventually(
      'frank in the roster, from',
      () =>
        pushed('im.roster.changed').some((b) =>
          b.items.some((i: any) => i.jid === `frank@${DOMAIN}` && ['from', 'both'].includes(i.subscription)),
        ),
      WAIT,
    );

    await h.request('im.subscription.answer', { account: acc, jid: `grace@${DOMAIN}`, accept: false });
    await eventually(
      'unsubscribed at grace',
      () => grace.stanzas.some((s) => s.is('presence') && s.attrs.type === 'unsubscribed'),
      WAIT,
    );
    // Denied: grace sees no presence of alice and is not asked back.
    assert.ok(!grace.stanzas.some((s) => s.is('presence') && s.attrs.type === 'subscribe'));
    assert.ok(!aliceAvailable(grace));
    const roster = await h.request<any>('im.roster', { account: acc });
    const graceItem = roster.items.find((i: any) => i.jid === `grace@${DOMAIN}`);
    assert.ok(!graceItem || ['none', 'to'].includes(graceItem.subscription));
  });

  test('delivery receipts and typing notifications, both ways with a plain client', async () => {
    const dave = await plain('dave', 'phone');
    await eventually(
      'dave online at the handset',
      () =>
        pushed('im.presence').some((b) =>
          b.items.some((i: any) => i.jid === `dave@${DOMAIN}` && i.show === 'available'),
        ),
      WAIT,
    );
    // Handset → dave: the message asks for a receipt; dave's client answers it.
    await h.request('im.send', {
      account: acc,
      to: `dave@${DOMAIN}`,
      body: 'receipt please',
      clientId: 'rc-1',
    });
    await eventually(
      'message at dave',
      () => dave.stanzas.some((s) => s.is('message') && s.getChildText('body') === 'receipt please'),
      WAIT,
    );
    const m = dave.stanzas.find((s) => s.is('message') && s.getChildText('body') === 'receipt please')!;
    assert.ok(m.getChild('request', RECEIPTS), 'the gateway asks for a receipt');
    assert.equal(m.attrs.id, 'rc-1');
    await dave.x.send(
      xml('message', { to: m.attrs.from, id: 'r-1' }, xml('received', { xmlns: RECEIPTS, id: m.attrs.id })),
    );
    await eventually(
      'im.receipt at the handset',
      () => pushed('im.receipt').some((r) => r.id === 'rc-1'),
      WAIT,
    );
    assert.deepEqual(
      pushed('im.receipt').find((r) => r.id === 'rc-1'),
      { account: acc, from: `dave@${DOMAIN}`, id: 'rc-1' },
    );

    // Dave → handset, asking for a receipt: once the handset's session has it, dave gets one.
    await dave.x.send(
      xml(
        'message',
        { type: 'chat', to: `alice@${DOMAIN}`, id: 'dave-77' },
        xml('body', {}, 'did it arrive?'),
        xml('request', { xmlns: RECEIPTS }),
      ),
    );
    await eventually(
      'im.message from dave',
      () => pushed('im.message').some((x) => x.body === 'did it arrive?'),
      WAIT,
    );
    await eventually(
      'receipt at dave',
      () =>
        dave.stanzas.some((s) => s.is('message') && s.getChild('received', RECEIPTS)?.attrs.id === 'dave-77'),
      WAIT,
    );

    // Typing, handset → dave.
    const typed = await h.request<any>('im.typing', {
      account: acc,
      to: `dave@${DOMAIN}`,
      state: 'composing',
    });
    assert.equal(typed.account ?? acc, acc);
    await eventually(
      'composing at dave',
      () => dave.stanzas.some((s) => s.is('message') && s.getChild('composing', CHATSTATES) !== undefined),
      WAIT,
    );
    const typing = dave.stanzas.find((s) => s.is('message') && s.getChild('composing', CHATSTATES))!;
    assert.equal(typing.getChild('body'), undefined, 'a chat state carries no body');
    // Typing, dave → handset (and paused after it).
    for (const state of ['composing', 'paused']) {
      await dave.x.send(
        xml('message', { type: 'chat', to: `alice@${DOMAIN}` }, xml(state, { xmlns: CHATSTATES })),
      );
    }
    await eventually('paused pushed', () => pushed('im.typing').some((t) => t.state === 'paused'), WAIT);
    assert.deepEqual(
      pushed('im.typing').filter((t) => t.from === `dave@${DOMAIN}`),
      [
        { account: acc, from: `dave@${DOMAIN}`, state: 'composing' },
        { account: acc, from: `dave@${DOMAIN}`, state: 'paused' },
      ],
    );
    // A chat state pushes no im.message.
    assert.equal(pushed('im.message').filter((x) => x.from === `dave@${DOMAIN}`).length, 1);
  });

  test(`a ${CONTACTS}-contact roster coming online is coalesced: deltas only, batched, complete`, async () => {
    const dev = await provisionDevice(gw.dataDir);
    const hb = handsetFor(gw, dev);
    handsets.push(hb);
    const bigEvents: Array<{ name: string; body: any }> = [];
    hb.on('event', (e) => bigEvents.push({ name: e.name, body: e.body }));
    await hb.connect();
    const bigAcc = await login(hb, 'big');
    const roster = await hb.request<any>('im.roster', { account: bigAcc });
    assert.equal(roster.items.length, CONTACTS);
    assert.ok(roster.items.every((i: any) => i.presence === 'unavailable'));

    // Every contact connects first, then all send their presence at once (a roster coming online).
    const clients: XmppClient[] = [];
    for (let i = 0; i < CONTACTS; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, CONTACTS - i) }, (_, j) =>
          plain(contactName(i + j), 'phone', false),
        ),
      );
      clients.push(...batch.map((p) => p.x));
    }
    const status = (i: number) => `status of ${contactName(i)}`;
    const presenceOf = (i: number) =>
      xml('presence', {}, xml('show', {}, i % 3 === 0 ? 'away' : 'chat'), xml('status', {}, status(i)));
    await Promise.all(clients.map((x, i) => x.send(presenceOf(i))));
    // The same presence again from every contact: not a change, so nothing more for the handset.
    await Promise.all(clients.map((x, i) => x.send(presenceOf(i))));

    const presenceItems = () =>
      bigEvents.filter((e) => e.name === 'im.presence').flatMap((e) => e.body.items as any[]);
    await eventually(
      'every contact online at the handset',
      () => new Set(presenceItems().map((i) => i.jid)).size >= CONTACTS,
      { timeoutMs: 120_000 },
    );
    // One last change after everything settled proves the earlier pushes are all in.
    await clients[1]!.send(xml('presence', {}, xml('show', {}, 'dnd'), xml('status', {}, 'last')));
    await eventually('the last change', () => presenceItems().some((i) => i.status === 'last'), WAIT);

    const pushes = bigEvents.filter((e) => e.name === 'im.presence');
    const items = presenceItems();
    // Deltas only: each contact once for coming online (the repeat changed nothing), plus the last change.
    assert.equal(items.length, CONTACTS + 1, `${items.length} items for ${CONTACTS} contacts`);
    // Batched: never one push per contact, never more than the batch limit in one push.
    assert.ok(pushes.length <= CONTACTS / 10, `${pushes.length} im.presence pushes for ${CONTACTS} contacts`);
    assert.ok(pushes.every((p) => p.body.items.length <= 100 && p.body.account === bigAcc));
    // Complete and correct: the final state of every contact.
    const final = new Map<string, any>();
    for (const i of items) final.set(i.jid, i);
    assert.equal(final.size, CONTACTS);
    for (let i = 0; i < CONTACTS; i++) {
      const expected =
        i === 1
          ? { jid: `${contactName(1)}@${DOMAIN}`, show: 'dnd', status: 'last' }
          : { jid: `${contactName(i)}@${DOMAIN}`, show: i % 3 === 0 ? 'away' : 'chat', status: status(i) };
      assert.deepEqual(final.get(expected.jid), expected);
    }
    // The roster answer agrees with the pushes.
    const after = await hb.request<any>('im.roster', { account: bigAcc });
    for (const item of after.items) {
      const p = final.get(item.jid);
      assert.equal(item.presence, p.show);
      assert.equal(item.status, p.status);
    }
    await Promise.all(clients.map((x) => x.stop().catch(() => {})));
  });

  test('hostile stanzas from a contact: bounded, sanitised, no crash', async () => {
    const mallory = await plain('mallory', 'evil');
    const seen = () => pushed('im.message').filter((x) => x.from === `mallory@${DOMAIN}`);
    // Huge body: cut to the limit and flagged.
    await mallory.x.send(
      xml('message', { type: 'chat', to: `alice@${DOMAIN}` }, xml('body', {}, '€'.repeat(80_000))),
    );
    await eventually('huge message', () => seen().length === 1, WAIT);
    assert.equal(seen()[0].truncated, true);
    assert.equal(seen()[0].body.length, 65_536);

    // Spoofed from: a forged carbon claiming alice sent something, and a forged archive id.
    await mallory.x.send(
      xml(
        'message',
        { type: 'chat', to: `alice@${DOMAIN}` },
        xml(
          'received',
          { xmlns: 'urn:xmpp:carbons:2' },
          xml(
            'forwarded',
            { xmlns: 'urn:xmpp:forward:0' },
            xml(
              'message',
              { from: `dave@${DOMAIN}/phone`, to: `alice@${DOMAIN}`, type: 'chat' },
              xml('body', {}, 'forged carbon'),
            ),
          ),
        ),
      ),
    );
    await mallory.x.send(
      xml(
        'message',
        { type: 'chat', to: `alice@${DOMAIN}`, from: `dave@${DOMAIN}/phone` },
        xml('body', {}, 'spoofed sender'),
        xml('stanza-id', { xmlns: 'urn:xmpp:sid:0', by: `alice@${DOMAIN}`, id: 'forged-archive-id' }),
        xml('shouting', { xmlns: CHATSTATES }),
      ),
    );
    await eventually(
      'the spoofed message',
      () => pushed('im.message').some((x) => x.body === 'spoofed sender'),
      WAIT,
    );
    const spoofed = pushed('im.message').find((x) => x.body === 'spoofed sender');
    // The server stamps the real sender; the archive id is the server's own.
    assert.equal(spoofed.from, `mallory@${DOMAIN}`);
    assert.notEqual(spoofed.stanzaId, 'forged-archive-id');
    assert.ok(!pushed('im.message').some((x) => x.body === 'forged carbon'));
    assert.ok(!pushed('im.typing').some((t) => t.from === `mallory@${DOMAIN}`), 'unknown chat state ignored');

    // A presence flood: coalesced to the last state, in few pushes.
    const before = pushed('im.presence').length;
    const flood = 300;
    for (let i = 0; i < flood; i++) {
      await mallory.x.send(
        xml(
          'presence',
          { to: `alice@${DOMAIN}` },
          xml('show', {}, i % 2 ? 'away' : 'dnd'),
          xml('status', {}, `flood ${i} ${'!'.repeat(2000)}`),
        ),
      );
    }
    await eventually(
      'the last flood state',
      () =>
        pushed('im.presence').some((b) =>
          b.items.some((i: any) => i.status?.startsWith(`flood ${flood - 1} `)),
        ),
      WAIT,
    );
    const malloryItems = pushed('im.presence')
      .slice(before)
      .flatMap((b) => b.items)
      .filter((i: any) => i.jid === `mallory@${DOMAIN}`);
    assert.ok(malloryItems.length < flood / 2, `${malloryItems.length} presence items for ${flood} stanzas`);
    assert.equal(malloryItems.at(-1).show, 'away');
    assert.ok(
      malloryItems.every((i: any) => i.status.length <= 1024),
      'status bounded',
    );

    // Characters XML cannot carry: the server closes the hostile stream; nothing reaches the handset.
    const countBefore = seen().length;
    await mallory.x
      .send(
        xml(
          'message',
          { type: 'chat', to: `alice@${DOMAIN}` },
          xml('body', {}, 'bell \u0007 nul \u0000 end'),
        ),
      )
      .catch(() => {});
    await eventually('the hostile stream closed', () => mallory.x.status !== 'online', {
      timeoutMs: 30_000,
    }).catch(() => {});

    // The handset's account is still in business.
    const dave = await plain('dave', 'later');
    await dave.x.send(
      xml('message', { type: 'chat', to: `alice@${DOMAIN}` }, xml('body', {}, 'still there?')),
    );
    await eventually(
      'a message after the attack',
      () => pushed('im.message').some((x) => x.body === 'still there?'),
      WAIT,
    );
    const control = (text: string) => [...text].some((c) => c.charCodeAt(0) < 9);
    assert.ok(!pushed('im.message').some((x) => control(x.body)), 'no control characters');
    assert.ok(seen().length >= countBefore);
    const accounts = await h.request<any>('im.accounts', {});
    assert.equal(accounts.accounts.find((a: any) => a.account === acc).state, 'online');
  });
});
