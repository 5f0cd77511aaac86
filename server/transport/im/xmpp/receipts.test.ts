import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type XmlElement, xml } from '@xmpp/client';
import { Receipts } from './receipts.ts';
import { type ChatMessage, NS } from './types.ts';

const message = (): ChatMessage => ({ from: 'b', to: 'a', body: 'x', at: '', direction: 'in' });

function setup(online = true) {
  const sent: XmlElement[] = [];
  const receipts: Array<[string, string]> = [];
  const state = { online };
  const r = new Receipts({
    send: async (el) => void sent.push(el),
    isOnline: () => state.online,
    onReceipt: (from, id) => receipts.push([from, id]),
  });
  return { r, sent, receipts, state };
}

test('a receipt from a contact is reported with the id of our message (cut to 256)', () => {
  const { r, receipts } = setup();
  r.handle(xml('message', {}, xml('received', { xmlns: NS.receipts, id: 'c-1' })), 'bob@example.test');
  r.handle(
    xml('message', {}, xml('received', { xmlns: NS.receipts, id: 'x'.repeat(300) })),
    'bob@example.test',
  );
  r.handle(xml('message', {}, xml('received', { xmlns: NS.receipts })), 'bob@example.test');
  r.handle(xml('message', {}, xml('received', { xmlns: NS.receipts, id: 'c-2' })), '');
  assert.deepEqual(receipts, [
    ['bob@example.test', 'c-1'],
    ['bob@example.test', 'x'.repeat(256)],
  ]);
});

test('a requested receipt is sent once, to the full sender address, with fresh ids', async () => {
  const { r, sent } = setup();
  const asked = xml(
    'message',
    { from: 'bob@example.test/phone', id: 'm-1' },
    xml('request', { xmlns: NS.receipts }),
  );
  const m1 = message();
  const m2 = message();
  r.remember(m1, asked);
  r.remember(m2, asked);
  await r.confirm(m1);
  await r.confirm(m1);
  await r.confirm(m2);
  assert.equal(sent.length, 2);
  const [a, b] = sent;
  assert.equal(a?.attrs.to, 'bob@example.test/phone');
  assert.equal(a?.getChild('received', NS.receipts)?.attrs.id, 'm-1');
  assert.notEqual(a?.attrs.id, b?.attrs.id);
});

test('no receipt without a request, without a message id, or while offline', async () => {
  const { r, sent, state } = setup(false);
  const m = message();
  r.remember(
    m,
    xml('message', { from: 'bob@example.test', id: 'm' }, xml('request', { xmlns: NS.receipts })),
  );
  await r.confirm(m);
  const noId = message();
  r.remember(noId, xml('message', { from: 'bob@example.test' }, xml('request', { xmlns: NS.receipts })));
  const noRequest = message();
  r.remember(noRequest, xml('message', { from: 'bob@example.test', id: 'n' }));
  state.online = true;
  await r.confirm(noId);
  await r.confirm(noRequest);
  assert.equal(sent.length, 0);
  // Still owed once online: the offline call did not use it up.
  await r.confirm(m);
  assert.equal(sent.length, 1);
});

test('a failing send does not fail confirm', async () => {
  const r = new Receipts({ send: async () => Promise.reject(new Error('gone')), isOnline: () => true });
  const m = message();
  r.remember(m, xml('message', { from: 'b@x', id: 'i' }, xml('request', { xmlns: NS.receipts })));
  await r.confirm(m);
});
