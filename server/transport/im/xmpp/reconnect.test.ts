import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../../../device-protocol/errors.ts';
import { eventually } from '../../../../testing/index.ts';
import { deferred } from './async.ts';
import { backoffDelay, Reconnect, type ReconnectOptions } from './reconnect.ts';

test('the backoff doubles from the initial delay up to the cap, with jitter between half and all of it', () => {
  const b = { initialMs: 1000, maxMs: 60_000 };
  assert.equal(
    backoffDelay(0, b, () => 0),
    500,
  );
  assert.equal(
    backoffDelay(0, b, () => 0.999_999),
    1000,
  );
  assert.equal(
    backoffDelay(3, b, () => 0.5),
    6000,
  );
  assert.equal(
    backoffDelay(6, b, () => 0),
    30_000,
  );
  assert.equal(
    backoffDelay(1000, b, () => 0.999_999),
    60_000,
  );
});

const refused = () => Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
const saslRefused = () => Object.assign(new Error('no'), { name: 'SASLError', condition: 'not-authorized' });

/** A loop over scripted attempts: each entry fails with that error, or (undefined) succeeds. */
function setup(script: Array<unknown>, opts: Partial<ReconnectOptions> = {}) {
  const states: string[] = [];
  const terminal: GatewayError[] = [];
  let attempts = 0;
  let drops = 0;
  let link = deferred<void>();
  const loop = new Reconnect({
    connect: async () => {
      const outcome = script[attempts++];
      if (outcome !== undefined) throw outcome;
      link = deferred<void>();
    },
    disconnected: () => link.promise,
    drop: async () => void drops++,
    onState: (state, error) => void states.push(error ? `${state} ${error.code}` : state),
    onTerminal: (error) => void terminal.push(error),
    random: () => 0,
    backoff: { initialMs: 1, maxMs: 4 },
    ...opts,
  });
  return {
    loop,
    states,
    terminal,
    attempts: () => attempts,
    drops: () => drops,
    dropLink: () => link.resolve(),
  };
}

test('failed attempts are retried (persistent) until one succeeds; a repeated state is reported once', async () => {
  const s = setup([refused(), refused(), undefined]);
  await s.loop.start(true);
  assert.equal(s.loop.state, 'online');
  assert.deepEqual(s.states, ['connecting', 'retrying im.unreachable', 'online']);
  assert.equal(s.drops(), 2);
  s.loop.stop(new GatewayError('im.unreachable'));
  s.dropLink();
  await s.loop.finished();
});

test('a lost stream means retrying, then online again', async () => {
  const s = setup([undefined, undefined]);
  await s.loop.start(false);
  s.dropLink();
  await eventually('the second session', () => s.attempts() === 2 && s.loop.state === 'online');
  assert.deepEqual(s.states, ['connecting', 'online', 'retrying', 'online']);
  s.loop.stop(new GatewayError('im.unreachable'));
  s.dropLink();
  await s.loop.finished();
});

test('not persistent, a first failure ends the loop: start rejects with the mapped error, state stopped', async () => {
  const s = setup([refused(), undefined]);
  await assert.rejects(
    s.loop.start(false),
    (err: unknown) => err instanceof GatewayError && err.code === 'im.unreachable',
  );
  await s.loop.finished();
  assert.equal(s.attempts(), 1);
  assert.equal(s.loop.stopped, true);
  assert.deepEqual(s.states, ['connecting', 'stopped im.unreachable']);
});

test('an authentication failure is terminal even when persistent', async () => {
  const s = setup([saslRefused(), undefined]);
  await assert.rejects(
    s.loop.start(true),
    (err: unknown) => err instanceof GatewayError && err.code === 'im.auth_failed',
  );
  await s.loop.finished();
  assert.equal(s.attempts(), 1);
  assert.equal(s.loop.state, 'auth_failed');
  assert.equal(s.loop.stopped, true);
  assert.deepEqual(
    s.terminal.map((e) => e.code),
    ['im.auth_failed'],
  );
});

test('a destination the outbound policy refuses is terminal even when persistent: stopped, never retried', async () => {
  const s = setup([new GatewayError('policy.destination_not_allowed'), undefined]);
  await assert.rejects(
    s.loop.start(true),
    (err: unknown) => err instanceof GatewayError && err.code === 'policy.destination_not_allowed',
  );
  await s.loop.finished();
  assert.equal(s.attempts(), 1);
  assert.equal(s.loop.stopped, true);
  assert.deepEqual(s.states, ['connecting', 'stopped policy.destination_not_allowed']);
  assert.deepEqual(
    s.terminal.map((e) => e.code),
    ['policy.destination_not_allowed'],
  );
});

test('stop wakes a loop sleeping in its backoff and fails a start still waiting', async () => {
  const s = setup([refused(), undefined], { backoff: { initialMs: 60_000, maxMs: 60_000 } });
  const started = s.loop.start(true);
  const stopError = new GatewayError('im.unreachable', 'stopped');
  await eventually('the backoff', () => s.loop.state === 'retrying');
  s.loop.stop(stopError);
  await assert.rejects(started, (err) => err === stopError);
  await s.loop.finished();
  assert.equal(s.attempts(), 1);
});

test('start runs one loop however often it is called; a throwing state listener does not break it', async () => {
  let calls = 0;
  const s = setup([undefined], {
    onState: () => {
      calls++;
      throw new Error('listener bug');
    },
  });
  const a = s.loop.start(false);
  const b = s.loop.start(false);
  await Promise.all([a, b]);
  assert.equal(s.attempts(), 1);
  assert.equal(calls, 2);
  s.loop.stop(new GatewayError('im.unreachable'));
  s.dropLink();
  await s.loop.finished();
});
