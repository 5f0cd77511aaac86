import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Bye, type ErrorFrame, Kind } from '../messages.ts';
import { byeVerdict, errorFromFrame, errorVerdict } from './refusals.ts';

const error = (code: string, extra: Partial<ErrorFrame> = {}): ErrorFrame => ({
  kind: Kind.Error,
  code,
  message: `${code}!`,
  fatal: true,
  ...extra,
});
const bye = (code: string, extra: Partial<Bye> = {}): Bye => ({
  kind: Kind.Bye,
  code,
  message: '',
  resumable: true,
  ...extra,
});

describe('errorFromFrame', () => {
  test('keeps unknown codes, and a retry hint makes any code retryable', () => {
    const unknown = errorFromFrame(error('future.code'));
    assert.equal(unknown.code, 'future.code');
    assert.equal(unknown.retryable, false);
    assert.equal(errorFromFrame(error('future.code', { retryAfterMs: 5 })).retryAfterMs, 5);
    assert.equal(errorFromFrame(error('future.code', { retryAfterMs: 5 })).retryable, true);
    assert.equal(errorFromFrame(error('bus.timeout')).retryable, true, 'older gateways');
    assert.equal(errorFromFrame(bye('session.draining', { reconnectAfterMs: 9 })).retryAfterMs, 9);
  });
});

describe('errorVerdict', () => {
  const verdict = (frame: ErrorFrame, busyTooLong = false) =>
    errorVerdict(frame, errorFromFrame(frame), busyTooLong);

  test('an auth refusal ends the session', () => {
    const v = verdict(error('auth.bad_secret'));
    assert.equal(v.do, 'fail');
    assert.equal(v.do === 'fail' && v.emitError, true);
  });

  test('session.busy waits with the backoff until too long, then starts a new session at once', () => {
    const waiting = verdict(error('session.busy'));
    assert.equal(waiting.do === 'reconnect' && waiting.forgetSession, undefined);
    assert.equal(waiting.do === 'reconnect' && waiting.delayMs, undefined);
    const given = verdict(error('session.busy'), true);
    assert.ok(given.do === 'reconnect');
    assert.deepEqual(
      [given.forgetSession, given.delayMs, given.reason],
      [true, 0, 'session.busy! (given up)'],
    );
    assert.equal(given.emitError?.code, 'session.busy');
  });

  test('auth.resume_failed forgets the session quietly; others reconnect after their hint', () => {
    const failed = verdict(error('auth.resume_failed'));
    assert.ok(failed.do === 'reconnect');
    assert.deepEqual([failed.forgetSession, failed.delayMs, failed.emitError], [true, 0, undefined]);
    const limited = verdict(error('session.rate_limited', { retryAfterMs: 700 }));
    assert.ok(limited.do === 'reconnect');
    assert.deepEqual([limited.delayMs, limited.emitError?.code], [700, 'session.rate_limited']);
  });
});

describe('byeVerdict', () => {
  test('session.moved lets the old carrier go only during our own switch', () => {
    assert.deepEqual(byeVerdict(bye('session.moved'), true), { do: 'let-go' });
    assert.equal(byeVerdict(bye('session.moved'), false).do, 'reconnect');
  });

  test('a replaced session ends without an error event; a disabled device ends with one', () => {
    assert.deepEqual(
      [byeVerdict(bye('session.replaced'), false), byeVerdict(bye('auth.disabled'), false)].map((v) =>
        v.do === 'fail' ? v.emitError : v.do,
      ),
      [false, true],
    );
  });

  test('draining moves on to the next URL, back soon; a non-resumable Bye forgets the session', () => {
    const draining = byeVerdict(bye('session.draining', { reconnectAfterMs: 50 }), false);
    assert.ok(draining.do === 'reconnect');
    assert.deepEqual(
      [draining.moveOn, draining.forgetSession, draining.delayMs, draining.backSoon],
      [true, false, 50, true],
    );
    const expired = byeVerdict(bye('session.expired', { resumable: false }), false);
    assert.ok(expired.do === 'reconnect');
    assert.deepEqual(
      [expired.moveOn, expired.forgetSession, expired.reason, expired.backSoon],
      [false, true, 'session.expired', false],
    );
  });
});
