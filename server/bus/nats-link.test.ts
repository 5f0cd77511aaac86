import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HELD_MAX_MESSAGES, NatsLink, RECONNECT_GRACE_MS } from './nats-link.ts';

const bytes = (n: number) => new Uint8Array(n);

function link() {
  const clock = { t: 1000, now: () => clock.t };
  return { clock, link: new NatsLink(clock) };
}

describe('NatsLink', () => {
  test('publishes are held while down and until the release after the reconnect, then come in order, once', () => {
    const { link: l } = link();
    assert.equal(l.holding, false);
    l.down();
    assert.equal(l.holding, true);
    l.hold('a', bytes(1));
    assert.deepEqual(l.release(), [], 'not while down');
    l.reconnected();
    assert.equal(l.up, true, 'requests go at once');
    assert.equal(l.holding, true, 'publishes still wait');
    l.hold('b', bytes(2));
    assert.deepEqual(
      l.release().map((h) => h.subject),
      ['a', 'b'],
    );
    assert.equal(l.holding, false);
    assert.deepEqual(l.release(), []);
  });

  test('over the bound the oldest held publishes go, and are counted', () => {
    const { link: l } = link();
    l.down();
    for (let i = 0; i < HELD_MAX_MESSAGES + 3; i++) l.hold(`s${i}`, bytes(1));
    assert.equal(l.heldCount, HELD_MAX_MESSAGES);
    assert.equal(l.dropped, 3);
    l.reconnected();
    assert.equal(l.release()[0]?.subject, 's3');
  });

  test('a request waiting for the connection goes on at the reconnect; one that waits too long gives up', async () => {
    const { link: l } = link();
    assert.equal(await l.waitUp(0), true, 'up: at once, whatever the time left');
    l.down();
    assert.equal(await l.waitUp(0), false);
    assert.equal(await l.waitUp(5), false);
    const waiting = l.waitUp(60_000);
    l.reconnected();
    assert.equal(await waiting, true);
  });

  test('closing wakes the waiting requests with false and holds nothing more', async () => {
    const { link: l } = link();
    l.down();
    const waiting = l.waitUp(60_000);
    l.close();
    assert.equal(await waiting, false);
    l.hold('x', bytes(1));
    assert.equal(l.heldCount, 0);
    assert.equal(l.up, false);
    assert.equal(l.closed, true);
  });

  test('requests in flight hear of the connection going, once; an undone one does not', () => {
    const { link: l } = link();
    const heard: string[] = [];
    l.whileUp(() => heard.push('a'));
    const undo = l.whileUp(() => heard.push('b'));
    undo();
    l.down();
    l.down();
    assert.deepEqual(heard, ['a']);
    l.reconnected();
    l.down();
    assert.deepEqual(heard, ['a'], 'a reconnect does not bring old ones back');
  });

  test('"no responders" is doubted only for a while after a reconnect, not after the first connect', () => {
    const { clock, link: l } = link();
    assert.equal(l.inGrace(), false);
    l.down();
    clock.t += 10_000;
    l.reconnected();
    assert.equal(l.inGrace(), true);
    clock.t += RECONNECT_GRACE_MS;
    assert.equal(l.inGrace(), false);
  });

  test('listeners hear down and up; one that throws does not stop the others', () => {
    const { link: l } = link();
    const heard: boolean[] = [];
    l.onChange(() => {
      throw new Error('listener bug');
    });
    const undo = l.onChange((up) => heard.push(up));
    l.down();
    l.reconnected();
    undo();
    l.down();
    assert.deepEqual(heard, [false, true]);
  });
});
