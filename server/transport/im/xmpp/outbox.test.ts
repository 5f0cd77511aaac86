import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { type XmlElement, xml } from '@xmpp/client';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import { chatMessageStanza } from './message.ts';
import { Outbox, type OutboxOptions } from './outbox.ts';
import { NS } from './types.ts';

class Entity extends EventEmitter {
  sent: XmlElement[] = [];
  failNext = false;
  async send(el: XmlElement): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('socket gone');
    }
    this.sent.push(el);
  }
  names(): string[] {
    return this.sent.map((el) => (el.name === 'message' ? `message ${el.attrs.id}` : el.name));
  }
}

class Sm extends EventEmitter {
  enabled = true;
  id = '';
  outbound = 0;
  outbound_q: Array<{ stanza: XmlElement }> = [];
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

function setup(opts: Partial<OutboxOptions> & { online?: boolean; smEnabled?: boolean } = {}) {
  const entity = new Entity();
  const sm = new Sm();
  sm.enabled = opts.smEnabled ?? true;
  const state = { online: opts.online ?? true };
  const sent: Array<[string, number]> = [];
  const outbox = new Outbox({
    entity,
    sm,
    isOnline: () => state.online,
    sendTimeoutMs: opts.sendTimeoutMs ?? 60_000,
    onSent: (id, bytes) => void sent.push([id, bytes]),
  });
  const submit = (id: string, body = 'hi') =>
    outbox.submit(id, Buffer.byteLength(body), () => chatMessageStanza('bob@example.test', body, id));
  return { entity, sm, state, sent, outbox, submit };
}

/** Settles when `p` does, or says it is still pending after a few turns of the event loop. */
async function settled(p: Promise<unknown>): Promise<'resolved' | 'rejected' | 'pending'> {
  let result: 'resolved' | 'rejected' | 'pending' = 'pending';
  p.then(
    () => (result = 'resolved'),
    () => (result = 'rejected'),
  );
  for (let i = 0; i < 3; i++) await turn();
  return result;
}

test('a message is sent at once and resolves only on the server ack; one <r/> follows a burst', async () => {
  const { entity, sm, sent, submit } = setup();
  const a = submit('c-1', 'héllo');
  const b = submit('c-2');
  await turn();
  assert.deepEqual(entity.names(), ['message c-1', 'message c-2', 'r']);
  assert.equal(entity.sent[2]?.attrs.xmlns, NS.sm);
  assert.equal(await settled(a), 'pending');
  sm.emit('ack', entity.sent[0]);
  assert.equal(await settled(a), 'resolved');
  assert.deepEqual(sent, [['c-1', 6]]);
  assert.equal(await settled(b), 'pending');
});

test('a second submit of a clientId in flight joins the first', async () => {
  const { entity, sm, submit } = setup();
  const a = submit('c-1');
  const again = submit('c-1');
  await turn();
  assert.deepEqual(entity.names(), ['message c-1', 'r']);
  sm.emit('ack', entity.sent[0]);
  await Promise.all([a, again]);
});

test('offline, a message waits for the next fresh session; resendUnacked sends each one once', async () => {
  const { entity, state, outbox, submit } = setup({ online: false });
  const p = submit('c-1');
  await turn();
  assert.deepEqual(entity.names(), []);
  state.online = true;
  outbox.resendUnacked();
  outbox.resendUnacked();
  await turn();
  assert.deepEqual(entity.names(), ['message c-1', 'r']);
  assert.equal(await settled(p), 'pending');
});

test('a message the library gave up on (fail) or whose write failed goes out again, same id', async () => {
  const { entity, sm, outbox, submit } = setup();
  submit('c-1');
  entity.failNext = true;
  submit('c-2');
  await turn();
  assert.deepEqual(entity.names(), ['message c-1', 'r']);
  sm.emit('fail', entity.sent[0]);
  entity.sent = [];
  outbox.resendUnacked();
  await turn();
  assert.deepEqual(entity.names(), ['message c-1', 'message c-2', 'r']);
  assert.equal(entity.sent[0]?.getChild('origin-id', NS.sid)?.attrs.id, 'c-1');
});

test('without stream management a message counts as sent once written', async () => {
  const { entity, sent, submit } = setup({ smEnabled: false });
  await submit('c-1');
  assert.deepEqual(entity.names(), ['message c-1']);
  assert.deepEqual(sent, [['c-1', 2]]);
});

test("a failed resumption's h settles the messages the server handled on the old stream", async () => {
  const { entity, sm, sent, submit } = setup();
  const a = submit('c-1');
  const b = submit('c-2');
  const c = submit('c-3');
  await turn();
  const [m1, m2, m3] = entity.sent;
  assert.ok(m1 && m2 && m3);
  sm.outbound = 5; // five acked earlier on that stream
  sm.outbound_q = [{ stanza: xml('iq', { id: 'x' }) }, { stanza: m1 }, { stanza: m2 }, { stanza: m3 }];
  sm.id = 'old-stream';
  entity.emit('nonza', xml('features', { xmlns: NS.stream }, xml('sm', { xmlns: NS.sm })));
  entity.emit('nonza', xml('failed', { xmlns: NS.sm, h: '8' }));
  assert.deepEqual(
    [await settled(a), await settled(b), await settled(c)],
    ['resolved', 'resolved', 'pending'],
  );
  assert.deepEqual(
    sent.map(([id]) => id),
    ['c-1', 'c-2'],
  );
});

test('an h below what was acked, or a <failed/> to <enable/>, settles nothing', async () => {
  const { entity, sm, sent, submit } = setup();
  submit('c-1');
  await turn();
  sm.outbound = 5;
  sm.outbound_q = [{ stanza: entity.sent[0] as XmlElement }];
  sm.id = 'old';
  entity.emit('nonza', xml('features', { xmlns: NS.stream }, xml('sm', { xmlns: NS.sm })));
  entity.emit('nonza', xml('failed', { xmlns: NS.sm, h: '3' }));
  sm.id = '';
  entity.emit('nonza', xml('features', { xmlns: NS.stream }, xml('sm', { xmlns: NS.sm })));
  entity.emit('nonza', xml('failed', { xmlns: NS.sm, h: '9' }));
  assert.deepEqual(sent, []);
});

test('whenEnabled waits for <enabled/> when SM is offered, and not at all when it is not', async () => {
  const { entity, outbox } = setup();
  const pass = <T>(p: Promise<T>) => p;
  outbox.beginStream();
  entity.emit('nonza', xml('features', { xmlns: NS.stream }));
  assert.equal(await settled(outbox.whenEnabled(pass)), 'resolved');
  outbox.beginStream();
  entity.emit('nonza', xml('features', { xmlns: NS.stream }, xml('sm', { xmlns: NS.sm })));
  const waiting = outbox.whenEnabled(pass);
  assert.equal(await settled(waiting), 'pending');
  entity.emit('nonza', xml('enabled', { xmlns: NS.sm, id: 's', resume: 'true' }));
  assert.equal(await settled(waiting), 'resolved');
});

test('a message without an ack in time fails with a retryable im.send_failed', async (t) => {
  const { submit } = setup({ sendTimeoutMs: 5 });
  // The send timer is unref'd (it must not hold a process open); this test needs the loop alive.
  const alive = setTimeout(() => {}, 10_000);
  t.after(() => clearTimeout(alive));
  await assert.rejects(
    submit('c-1'),
    (err: unknown) => err instanceof GatewayError && err.code === 'im.send_failed' && err.retryable,
  );
});

test('failAll rejects every waiting message with the error given, and stop cancels the pending <r/>', async () => {
  const { entity, outbox, submit } = setup();
  const a = submit('c-1');
  const b = submit('c-2');
  outbox.stop();
  const error = new GatewayError('im.auth_failed');
  outbox.failAll(error);
  await assert.rejects(a, (err) => err === error);
  await assert.rejects(b, (err) => err === error);
  await turn();
  assert.deepEqual(entity.names(), ['message c-1', 'message c-2'], 'no <r/> after stop');
});
