import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BACK_SOON_MAX_MS, BACK_SOON_WINDOW_MS, CarrierRoute, type RouteSettings } from './route.ts';

const route = (settings: Partial<RouteSettings> = {}) =>
  new CarrierRoute({
    urls: ['a', 'b', 'c'],
    random: () => 0,
    fallbackAfterMs: 5_000,
    requestTimeoutMs: 30_000,
    backoff: { initialMs: 100, factor: 2, maxMs: 10_000, jitter: 0 },
    ...settings,
  });

describe('CarrierRoute', () => {
  test('moves on round robin, only away from the URL the next attempt would use', () => {
    const r = route();
    r.moveOn(1);
    assert.equal(r.urlIndex, 0, 'a carrier of another URL says nothing about this one');
    r.moveOn(0);
    r.moveOn(1);
    r.moveOn(2);
    assert.equal(r.urlIndex, 0);
    r.moveOn(0);
    r.welcomed(2);
    assert.equal(r.urlAt(r.urlIndex), 'c', 'the last good URL comes first again');
  });

  test('the backoff grows per round over all URLs and restarts after a Welcome', () => {
    const r = route();
    const delays = [0, 1, 2, 3, 4, 5, 6].map(() => r.nextRetry().delayMs);
    assert.deepEqual(delays, [100, 100, 100, 200, 200, 200, 400]);
    r.welcomed(0);
    const first = r.nextRetry();
    assert.deepEqual(first, { attempt: 1, delayMs: 100, transport: 'ws', url: 'a' });
    assert.equal(r.nextRetry(0).delayMs, 0, 'a delay given wins over the backoff');
  });

  test('after a planned goodbye the backoff stays short for a while, then grows again', () => {
    let now = 0;
    const r = route({
      urls: ['a'],
      now: () => now,
      backoff: { initialMs: 500, factor: 2, maxMs: 30_000, jitter: 0 },
    });
    r.expectBackSoon(200);
    const soon = [0, 1, 2, 3, 4].map(() => r.nextRetry().delayMs);
    assert.deepEqual(soon, [500, BACK_SOON_MAX_MS, BACK_SOON_MAX_MS, BACK_SOON_MAX_MS, BACK_SOON_MAX_MS]);
    now = BACK_SOON_WINDOW_MS;
    assert.equal(r.nextRetry().delayMs, 500 * 2 ** 5, 'past the window: the backoff where it had got to');
    r.welcomed(0);
    r.expectBackSoon(4_000);
    const spread = [0, 1, 2, 3, 4].map(() => r.nextRetry().delayMs);
    assert.deepEqual(spread, [500, 1000, 2000, 4000, 4000], "a wide spread of the gateway's stays as wide");
    r.welcomed(0);
    assert.deepEqual(
      [0, 1, 2, 3].map(() => r.nextRetry().delayMs),
      [500, 1000, 2000, 4000],
      'a Welcome ends it',
    );
    assert.equal(r.nextRetry().delayMs, 8000);
  });

  test("'auto' falls back to long-poll after WebSocket fails to open twice, and back", () => {
    const r = route();
    assert.equal(r.openFailed('ws'), undefined);
    assert.equal(r.nextKind(), 'ws');
    assert.equal(r.openFailed('ws'), 0, 'long-poll at once');
    assert.equal(r.nextKind(), 'poll');
    assert.equal(r.openFailed('poll'), undefined);
    assert.equal(r.nextKind(), 'ws', 'long-poll failing too: the network, not WebSocket');
    const pinned = route({ transport: 'ws' });
    pinned.openFailed('ws');
    pinned.openFailed('ws');
    assert.equal(pinned.nextKind(), 'ws');
  });

  test('an attempt without Welcome: one URL falls back to long-poll now, several move on first', () => {
    const one = route({ urls: ['a'] });
    assert.equal(one.attemptTimedOut('ws', 0), 0);
    assert.equal(one.nextKind(), 'poll');
    const three = route();
    assert.equal(three.attemptTimedOut('ws', 0), undefined);
    assert.deepEqual([three.urlIndex, three.nextKind()], [1, 'ws']);
    three.attemptTimedOut('ws', 1);
    assert.deepEqual([three.urlIndex, three.nextKind()], [2, 'poll']);
  });

  test("a WebSocket in 'auto' has fallbackAfterMs for its Welcome, anything else the longer", () => {
    const r = route();
    assert.deepEqual([r.handshakeMs('ws'), r.handshakeMs('poll')], [5_000, 30_000]);
    r.mode = 'ws';
    assert.equal(r.handshakeMs('ws'), 30_000);
  });

  test('no URLs given is one unnamed URL', () => {
    const r = route({ urls: [] });
    r.moveOn(0);
    assert.deepEqual([r.urlIndex, r.urlAt(0)], [0, '']);
  });
});
