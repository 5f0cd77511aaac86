import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type XmlElement, xml } from '@xmpp/client';
import { ContactPresences } from './presence.ts';
import { Roster } from './roster.ts';
import { NS, type RosterItem } from './types.ts';

const ME = 'alice@example.test';

function setup(items: XmlElement[] = []) {
  const iqs: string[] = [];
  const sent: string[] = [];
  const pushes: RosterItem[][] = [];
  let handler: ((ctx: { stanza: XmlElement; element: XmlElement }) => unknown) | undefined;
  const presences = new ContactPresences({ account: ME, onChange: (p) => roster.applyPresence(p) });
  const roster = new Roster({
    account: ME,
    iqCallee: {
      set: (ns, name, h) => {
        assert.equal(`${ns} ${name}`, `${NS.roster} query`);
        handler = h;
      },
    },
    iq: async (type, child) => {
      iqs.push(`${type} ${child.toString()}`);
      return type === 'get' ? xml('query', { xmlns: NS.roster }, ...items) : undefined;
    },
    send: async (el) => void sent.push(el.toString()),
    presence: presences,
    onPush: (changed) => void pushes.push(changed),
  });
  const push = (from: string | undefined, ...children: XmlElement[]) => {
    const element = xml('query', { xmlns: NS.roster }, ...children);
    const stanza = xml('iq', from === undefined ? { type: 'set' } : { type: 'set', from }, element);
    return handler?.({ stanza, element });
  };
  return { roster, presences, iqs, sent, pushes, push };
}

test('refresh reads the items, cleans names and groups, and starts contacts presence over', async () => {
  const { roster, presences, iqs } = setup([
    xml(
      'item',
      { jid: 'Bob@Example.test', name: 'Bob\u0001', subscription: 'both' },
      xml('group', {}, 'Friends'),
    ),
    xml('item', { jid: 'carol@example.test', ask: 'subscribe' }),
    xml('item', { jid: '@@' }),
    xml('item', { jid: 'dave@example.test', subscription: 'remove' }),
  ]);
  presences.handle(xml('presence', { from: 'bob@example.test/old' }));
  await roster.refresh();
  assert.deepEqual(iqs, [`get <query xmlns="${NS.roster}"/>`]);
  assert.deepEqual(roster.list(), [
    {
      jid: 'bob@example.test',
      name: 'Bob',
      groups: ['Friends'],
      subscription: 'both',
      presence: 'unavailable',
    },
    {
      jid: 'carol@example.test',
      groups: [],
      subscription: 'none',
      ask: 'subscribe',
      presence: 'unavailable',
    },
  ]);
});

test('items follow their contact presence; list() hands out copies', async () => {
  const { roster, presences } = setup([xml('item', { jid: 'bob@example.test', subscription: 'both' })]);
  await roster.refresh();
  presences.handle(
    xml('presence', { from: 'bob@example.test/p' }, xml('show', {}, 'away'), xml('status', {}, 'out')),
  );
  assert.equal(roster.list()[0]?.presence, 'away');
  assert.equal(roster.list()[0]?.status, 'out');
  presences.handle(xml('presence', { from: 'bob@example.test/p' }));
  assert.equal(roster.list()[0]?.status, undefined);
  const copy = roster.list()[0];
  copy?.groups.push('mutated');
  assert.deepEqual(roster.list()[0]?.groups, []);
});

test('a push from the server updates and removes items and is reported; one from anyone else is refused', async () => {
  const { roster, pushes, push } = setup([xml('item', { jid: 'bob@example.test', subscription: 'both' })]);
  await roster.refresh();
  assert.equal(push(undefined, xml('item', { jid: 'carol@example.test', subscription: 'to' })), true);
  assert.equal(push(ME, xml('item', { jid: 'bob@example.test', subscription: 'remove' })), true);
  const refused = push('mallory@example.test', xml('item', { jid: 'eve@example.test' })) as XmlElement;
  assert.equal(refused.getChild('service-unavailable')?.attrs.xmlns, 'urn:ietf:params:xml:ns:xmpp-stanzas');
  assert.deepEqual(
    roster.list().map((i) => i.jid),
    ['carol@example.test'],
  );
  assert.deepEqual(
    pushes.map((items) => items.map((i) => `${i.jid} ${i.subscription}`)),
    [['carol@example.test to'], ['bob@example.test remove']],
  );
});

test('add sets the item, then asks for a subscription; remove sets subscription remove', async () => {
  const { roster, iqs, sent } = setup();
  await roster.add('bob@example.test', 'Bob', ['A', 'B']);
  await roster.add('carol@example.test');
  await roster.remove('bob@example.test');
  assert.deepEqual(iqs, [
    `set <query xmlns="${NS.roster}"><item jid="bob@example.test" name="Bob"><group>A</group><group>B</group></item></query>`,
    `set <query xmlns="${NS.roster}"><item jid="carol@example.test"/></query>`,
    `set <query xmlns="${NS.roster}"><item jid="bob@example.test" subscription="remove"/></query>`,
  ]);
  assert.deepEqual(sent, [
    '<presence to="bob@example.test" type="subscribe"/>',
    '<presence to="carol@example.test" type="subscribe"/>',
  ]);
});

test('accepting a subscription asks for theirs unless we have it or asked already', async () => {
  const { roster, sent } = setup([
    xml('item', { jid: 'both@example.test', subscription: 'both' }),
    xml('item', { jid: 'to@example.test', subscription: 'to' }),
    xml('item', { jid: 'asked@example.test', subscription: 'from', ask: 'subscribe' }),
    xml('item', { jid: 'from@example.test', subscription: 'from' }),
  ]);
  await roster.refresh();
  for (const who of ['both', 'to', 'asked', 'from', 'new'])
    await roster.answerSubscription(`${who}@example.test`, true);
  await roster.answerSubscription('no@example.test', false);
  assert.deepEqual(sent, [
    '<presence to="both@example.test" type="subscribed"/>',
    '<presence to="to@example.test" type="subscribed"/>',
    '<presence to="asked@example.test" type="subscribed"/>',
    '<presence to="from@example.test" type="subscribed"/>',
    '<presence to="from@example.test" type="subscribe"/>',
    '<presence to="new@example.test" type="subscribed"/>',
    '<presence to="new@example.test" type="subscribe"/>',
    '<presence to="no@example.test" type="unsubscribed"/>',
  ]);
});
