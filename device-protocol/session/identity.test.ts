import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Kind, PROTOCOL_VERSION, type Welcome } from '../messages.ts';
import { SessionIdentity, withCaps } from './identity.ts';

const welcome = (extra: Partial<Welcome> = {}) =>
  ({
    kind: Kind.Welcome,
    sessionId: 's1',
    resumeToken: 'rt',
    token: 'jwt',
    resumed: false,
    ...extra,
  }) as Welcome;

describe('SessionIdentity', () => {
  test('says Hello until welcomed, then Resume; the token of a Welcome replaces the given one', () => {
    const id = new SessionIdentity({ imei: '1', token: 'old', plugins: [], compression: false });
    assert.equal(id.resume(0), undefined);
    assert.deepEqual(id.hello(), { kind: Kind.Hello, version: PROTOCOL_VERSION, imei: '1', token: 'old' });
    assert.equal(id.welcomed(welcome({ resumed: true })), false, 'nothing to resume yet');
    assert.deepEqual(id.resume(7), {
      kind: Kind.Resume,
      version: PROTOCOL_VERSION,
      sessionId: 's1',
      resumeToken: 'rt',
      lastSeq: 7,
    });
    assert.equal(id.welcomed(welcome({ resumed: true })), true);
    id.forget();
    assert.equal(id.resume(7), undefined);
    assert.equal(id.hello().token, 'jwt');
  });

  test('a secret goes instead of a token; caps join the plugins and deflate', () => {
    const id = new SessionIdentity({
      imei: '1',
      secret: 's',
      token: 't',
      client: 'c/1',
      caps: { encodings: ['a'] },
      plugins: [{ caps: { encodings: ['a', 'b'] } }],
    });
    const hello = id.hello();
    assert.deepEqual([hello.secret, hello.token, hello.client], ['s', undefined, 'c/1']);
    assert.deepEqual(hello.caps, { encodings: ['a', 'b'], compression: ['deflate'] });
  });

  test('session.busy counts from its first answer until a Welcome or forget', () => {
    const id = new SessionIdentity({ imei: '1', plugins: [] });
    assert.equal(id.busyFor(100, 50), false);
    assert.equal(id.busyFor(149, 50), false);
    assert.equal(id.busyFor(150, 50), true);
    id.welcomed(welcome());
    assert.equal(id.busyFor(500, 50), false);
  });
});

describe('withCaps', () => {
  test('joins lists without repeats and fills only unset fields', () => {
    assert.deepEqual(
      withCaps({ encodings: ['a'], screenWidth: 1 }, { encodings: ['b', 'a'], screenWidth: 2 }),
      {
        encodings: ['a', 'b'],
        screenWidth: 1,
      },
    );
    const caps = { encodings: ['a'] };
    assert.equal(withCaps(caps, { encodings: ['a'] }), caps, 'unchanged when nothing is new');
  });
});
