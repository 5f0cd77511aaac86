import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import { isHandsetCode, leaksInternals, outcomeOfRejection, Tally } from './answers.ts';

const tally = () => new Tally(new Set(['sys.echo', 'mail.sync']), () => Date.now());

describe('the fuzzer’s oracle', () => {
  test('rejections: the SDK’s own timeout and close are told apart from the gateway’s answers', () => {
    assert.deepEqual(
      outcomeOfRejection(new GatewayError('request.timeout', 'no answer to sys.echo (d1.2)')),
      { kind: 'no-answer' },
    );
    assert.equal(outcomeOfRejection(new GatewayError('request.timeout')).kind, 'error');
    assert.deepEqual(outcomeOfRejection(new GatewayError('session.closed', 'the handset was closed')), {
      kind: 'closed',
    });
    assert.equal(outcomeOfRejection(new GatewayError('session.closed')).kind, 'error');
    assert.equal(outcomeOfRejection(new TypeError('x')).kind, 'thrown');
  });

  test('handset codes: registry codes a handset may see, nothing internal, nothing invented', () => {
    assert.ok(isHandsetCode('mail.not_found'));
    assert.ok(isHandsetCode('internal'));
    for (const code of [
      'bus.timeout',
      'registry.not_found',
      'config.invalid',
      'api.forbidden',
      'nope',
      '__proto__',
      'toString',
    ]) {
      assert.equal(isHandsetCode(code), false, code);
    }
  });

  test('a stack or a source path in a message is a leak; ordinary words are not', () => {
    assert.ok(leaksInternals('boom\n    at foo (/work/x.ts:1:2)'));
    assert.ok(leaksInternals('at Client._onData (node_modules/@xmpp/connection/index.js:50:3)'));
    assert.equal(leaksInternals('uids: must be a UID or a non-empty list of UIDs'), false);
  });

  test('books answers per method and code; an untyped code, a silent request and a leak are findings', () => {
    const t = tally();
    t.recordSent('sys.echo', 'valid', true);
    t.recordSent('weird.name', 'random', false);
    assert.equal(t.recordOutcome('sys.echo', { kind: 'result' }, {}), undefined);
    assert.equal(
      t.recordOutcome('weird.name', { kind: 'error', code: 'request.unknown_method', message: 'x' }, {}),
      undefined,
    );
    assert.equal(
      t.recordOutcome('mail.sync', { kind: 'error', code: 'bus.timeout', message: 'x' }, {})?.kind,
      'untyped-answer',
    );
    assert.equal(t.recordOutcome('mail.sync', { kind: 'no-answer' }, {})?.kind, 'no-answer');
    assert.equal(
      t.recordOutcome('mail.sync', { kind: 'error', code: 'internal', message: 'at x (/a/b.ts:1:1)' }, {})
        ?.kind,
      'internal-leak',
    );
    assert.equal(
      t.recordOutcome(
        'mail.sync',
        { kind: 'error', code: 'internal', message: 'An internal error occurred.' },
        {},
      ),
      undefined,
    );
    assert.equal(t.internalCount, 1);
    assert.deepEqual(Object.fromEntries(t.sent), { 'sys.echo': 1, '(other names)': 1 });
    assert.equal(t.answers.get('ok'), 1);
    assert.equal(t.perMethod.get('(other names)')?.get('request.unknown_method'), 1);
    assert.equal(t.findingTotal(), 3);
  });

  test('a session ended with a code no handset may see is a finding; a lost carrier is not', () => {
    const t = tally();
    t.recordDisconnect(undefined, 'ws');
    t.recordDisconnect('session.rate_limited', 'poll');
    assert.equal(t.disconnects.get('session.rate_limited (poll)'), 1);
    assert.equal(t.findingTotal(), 0);
    t.recordDisconnect('bus.closed', 'ws');
    assert.equal(t.findingTotal(), 1);
  });
});
