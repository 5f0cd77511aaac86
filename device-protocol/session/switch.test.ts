import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { CarrierKind } from '../carriers/carrier.ts';
import { GatewayError } from '../errors.ts';
import type { SessionEffect, TransportMode } from '../handset-types.ts';
import { Kind, type Welcome } from '../messages.ts';
import { SessionEffects } from './effects.ts';
import { CarrierSwitch } from './switch.ts';

function setup() {
  const fx = new SessionEffects();
  const out: SessionEffect[] = fx.begin();
  const route: { mode: TransportMode } = { mode: 'poll' };
  const opened: Array<[CarrierKind, number | undefined]> = [];
  let dropped = 0;
  let nextId = 10;
  const sw = new CarrierSwitch(
    {
      fx,
      route,
      now: () => 0,
      open: (kind, url) => {
        opened.push([kind, url]);
        return { id: nextId++, url: url ?? 0 };
      },
      dropped: () => dropped++,
    },
    30_000,
  );
  const settled = () =>
    out.flatMap((e) =>
      e.type === 'resolve' ? [[e.call, 'ok']] : e.type === 'reject' ? [[e.call, e.error.code]] : [],
    );
  return { fx, out, route, sw, opened, settled, dropped: () => dropped };
}

const welcome = { kind: Kind.Welcome, sessionId: 's' } as Welcome;

describe('CarrierSwitch', () => {
  test('a candidate welcomed comes back for promotion and settles nothing by itself', () => {
    const { fx, sw, opened, settled } = setup();
    sw.wait('ws', 1);
    sw.open('ws', 'auto', 2);
    assert.deepEqual(opened, [['ws', 2]]);
    assert.equal(fx.armed('switch'), true);
    const promoted = sw.onFrame(welcome);
    assert.deepEqual(promoted?.candidate, { id: 10, kind: 'ws', url: 2, previousMode: 'auto' });
    assert.equal(sw.candidate, undefined);
    assert.equal(fx.armed('switch'), false);
    assert.deepEqual(settled(), []);
    sw.settle('ws');
    assert.deepEqual(settled(), [[1, 'ok']]);
  });

  test('a refused candidate is closed, the mode restored, its waiters rejected', () => {
    const { sw, out, route, settled, dropped } = setup();
    sw.wait('ws', 1);
    sw.wait('poll', 2);
    sw.open('ws', 'auto', 0);
    route.mode = 'ws';
    sw.onFrame({ kind: Kind.Error, code: 'session.busy', message: '', fatal: true });
    assert.equal(route.mode, 'auto');
    assert.ok(out.some((e) => e.type === 'close' && e.carrier === 10));
    assert.deepEqual(settled(), [[1, 'session.busy']]);
    assert.equal(dropped(), 1);
  });

  test('a second switch to the other kind replaces the first and keeps the first previous mode', () => {
    const { sw, route, settled, opened } = setup();
    sw.wait('ws', 1);
    sw.open('ws', 'auto', 0);
    route.mode = 'ws';
    sw.open('ws', 'ws', 0);
    assert.equal(opened.length, 1, 'the same kind again waits for the same candidate');
    sw.wait('poll', 2);
    route.mode = 'poll';
    sw.open('poll', 'ws', 0);
    assert.deepEqual(settled(), [[1, 'session.moved']]);
    assert.equal(route.mode, 'poll', 'replaced, not failed');
    sw.onTimer();
    assert.deepEqual(settled(), [
      [1, 'session.moved'],
      [2, 'request.timeout'],
    ]);
    assert.equal(route.mode, 'auto');
  });

  test('a candidate that closes rejects with its error or as unavailable; rejectAll empties the waiters', () => {
    const { sw, settled } = setup();
    sw.wait('ws', 1);
    sw.open('ws', 'poll', 0);
    sw.onClose({ reason: 'refused', failedToOpen: true });
    sw.onClose({ reason: 'again', failedToOpen: false });
    sw.wait('ws', 2);
    sw.open('ws', 'poll', 0);
    assert.equal(sw.forget(), 11);
    sw.rejectAll(new GatewayError('session.closed', 'closed'));
    sw.settle('ws');
    assert.deepEqual(settled(), [
      [1, 'request.unavailable'],
      [2, 'session.closed'],
    ]);
  });
});
