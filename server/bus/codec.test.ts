import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { GatewayError } from '../../device-protocol/errors.ts';
import {
  decodeMoved,
  decodePayload,
  decodeReply,
  encodeErrorReply,
  encodeMoving,
  encodePayload,
  encodeReply,
  inlineMoved,
  LARGE_BINARY_BYTES,
} from './codec.ts';

function rejectsWith(fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => err instanceof GatewayError && err.code === code);
}

describe('bus codec', () => {
  test('payloads round trip, Uint8Array included (as a plain Uint8Array)', () => {
    const payload = {
      s: 'héllo',
      n: 42,
      f: -1.5,
      big: 2 ** 40,
      b: true,
      nil: null,
      list: [1, 'two', [3]],
      bytes: new Uint8Array([0, 1, 254, 255]),
      nested: { deeper: { bytes: new Uint8Array(0) } },
    };
    const decoded = decodePayload(encodePayload(payload)) as typeof payload;
    assert.deepEqual(decoded, payload);
    assert.equal(decoded.bytes.constructor, Uint8Array);
  });

  test('decoded bytes are copies, not views of the message', () => {
    const encoded = encodePayload({ bytes: new Uint8Array([1, 2, 3]) });
    const a = decodePayload(encoded) as { bytes: Uint8Array };
    const b = decodePayload(encoded) as { bytes: Uint8Array };
    a.bytes[0] = 99;
    assert.equal(b.bytes[0], 1);
    assert.equal((decodePayload(encoded) as { bytes: Uint8Array }).bytes[0], 1);
  });

  test('a large binary gets a message buffer of its own, sized for it; later messages do not share it', () => {
    const source = new Uint8Array(3 * 1024 * 1024).fill(7);
    const before = encodePayload({ seq: 1 });
    const big = encodePayload({ source, spec: { width: 320 } });
    const after = encodePayload({ seq: 2 });
    assert.ok(big.byteLength > source.byteLength);
    assert.ok(big.buffer.byteLength < source.byteLength + 64 * 1024, `buffer ${big.buffer.byteLength}`);
    assert.notEqual(after.buffer, big.buffer);
    assert.notEqual(before.buffer, big.buffer);
    // One level deeper, as in a reply envelope: sized the same way.
    const reply = encodeReply({ bytes: source, width: 320 });
    assert.ok(reply.buffer.byteLength < source.byteLength + 64 * 1024, `buffer ${reply.buffer.byteLength}`);
    assert.deepEqual((decodeReply(reply) as { bytes: Uint8Array }).bytes, source);
    assert.deepEqual(decodePayload(after), { seq: 2 });
  });

  test('owned large messages decode binaries as views of the message; shared ones and small ones copy', () => {
    const source = new Uint8Array(LARGE_BINARY_BYTES).fill(3);
    const big = encodePayload({ source });
    const owned = (decodePayload(big, 'owned') as { source: Uint8Array }).source;
    assert.equal(owned.buffer, big.buffer, 'a view of the message');
    assert.equal(owned.constructor, Uint8Array);
    assert.deepEqual(owned, source);
    const shared = (decodePayload(big) as { source: Uint8Array }).source;
    assert.notEqual(shared.buffer, big.buffer);
    shared[0] = 99;
    assert.equal(owned[0], 3);
    // A small binary kept by its receiver must not pin a pack buffer shared with other messages.
    const small = encodePayload({ token: new Uint8Array([1, 2, 3]) });
    const kept = (decodePayload(small, 'owned') as { token: Uint8Array }).token;
    assert.notEqual(kept.buffer, small.buffer);
    assert.ok(kept.buffer.byteLength < 64);
  });

  test('a Buffer input decodes the same as a Uint8Array', () => {
    const encoded = encodePayload({ x: new Uint8Array([7]) });
    const decoded = decodePayload(Buffer.from(encoded)) as { x: Uint8Array };
    assert.equal(decoded.x.constructor, Uint8Array);
    assert.deepEqual(decoded.x, new Uint8Array([7]));
  });

  test('bad bytes are bus.bad_message', () => {
    rejectsWith(() => decodePayload(new Uint8Array(0)), 'bus.bad_message');
    rejectsWith(() => decodePayload(new Uint8Array([0x92, 0x01])), 'bus.bad_message');
    rejectsWith(() => decodePayload(new Uint8Array([0x01, 0x02])), 'bus.bad_message');
    rejectsWith(() => decodePayload('nope' as unknown as Uint8Array), 'bus.bad_message');
  });

  test('random bytes either decode or fail with bus.bad_message, never anything else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          decodePayload(bytes);
        } catch (err) {
          assert.ok(err instanceof GatewayError, String(err));
          assert.equal(err.code, 'bus.bad_message');
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('a success envelope gives the data back', () => {
    assert.deepEqual(decodeReply(encodeReply({ seq: 7 })), { seq: 7 });
    assert.equal(decodeReply(encodeReply(undefined)), undefined);
  });

  test('a GatewayError crosses with its code, message, field and retry hints', () => {
    const original = new GatewayError('request.bad_input', 'count must be an integer', {
      field: 'count',
      retryable: true,
      retryAfterMs: 250,
    });
    try {
      decodeReply(encodeErrorReply(original));
      assert.fail('should throw');
    } catch (err) {
      assert.ok(err instanceof GatewayError);
      assert.equal(err.code, 'request.bad_input');
      assert.equal(err.message, 'count must be an integer');
      assert.equal(err.field, 'count');
      assert.equal(err.retryable, true);
      assert.equal(err.retryAfterMs, 250);
    }
  });

  test('any other error becomes internal without leaking its message', () => {
    try {
      decodeReply(encodeErrorReply(new Error('secret path /etc/shadow')));
      assert.fail('should throw');
    } catch (err) {
      assert.ok(err instanceof GatewayError);
      assert.equal(err.code, 'internal');
      assert.doesNotMatch(err.message, /shadow/);
    }
  });

  test('an unknown error code from a newer peer becomes internal', () => {
    const bytes = encodePayload({ ok: false, code: 'future.code', message: 'm' });
    rejectsWith(() => decodeReply(bytes), 'internal');
  });

  test('a reply that is not an envelope is bus.bad_message', () => {
    rejectsWith(() => decodeReply(encodePayload({ seq: 1 })), 'bus.bad_message');
    rejectsWith(() => decodeReply(encodePayload(null)), 'bus.bad_message');
  });
});

describe('bus codec: binaries handed over (encodeMoving)', () => {
  const payload = () => {
    const whole = new Uint8Array(LARGE_BINARY_BYTES * 2).map((_, i) => i & 0xff);
    const backing = new Uint8Array(1000).fill(3);
    const part = backing.subarray(10, 20);
    return { whole, part, backing, data: { source: whole, part, spec: { width: 320, when: new Date(5) } } };
  };

  test("a whole binary is moved (the sender's view detached), a partial view is packed; the decode is the ordinary one", () => {
    const { whole, part, backing, data } = payload();
    const expected = decodePayload(encodePayload(data));
    const message = encodeMoving(data, [whole, part]);
    assert.equal(whole.byteLength, 0, "the sender's view is detached");
    assert.equal(part.byteLength, 10, 'a view of part of a buffer is copied, not moved');
    assert.equal(backing.byteLength, 1000);
    assert.equal(message.moved.length, 1);
    assert.ok(message.bytes.byteLength < 1000, 'the moved binary is not in the message bytes');
    const owned = decodeMoved(message, 'owned') as typeof data;
    assert.deepEqual(owned, expected);
    assert.equal(owned.source.constructor, Uint8Array);
    assert.equal(owned.source, message.moved[0], 'the one receiver gets the moved binary itself');
    const shared = decodeMoved(message, 'shared') as typeof data;
    assert.deepEqual(shared, expected);
    assert.notEqual(shared.source.buffer, message.moved[0]!.buffer, 'a shared decode copies');
  });

  test("the sender's objects are not touched; a binary not in the payload stays where it is", () => {
    const { whole, data } = payload();
    const spec = data.spec;
    const elsewhere = new Uint8Array(64);
    encodeMoving(data, [whole, elsewhere]);
    assert.equal(data.source, whole);
    assert.equal(data.spec, spec);
    assert.equal(elsewhere.byteLength, 64);
  });

  test('inlineMoved packs the moved binaries back in: ordinary self-contained bytes', () => {
    const { whole, data } = payload();
    const expected = decodePayload(encodePayload(data));
    const message = encodeMoving(data, [whole]);
    assert.deepEqual(decodePayload(inlineMoved(message)), expected);
  });

  test('a payload that cannot be encoded fails before anything is moved', () => {
    const whole = new Uint8Array(256);
    rejectsWith(() => encodeMoving({ whole, bad: 2n ** 70n }, [whole]), 'bus.bad_message');
    assert.equal(whole.byteLength, 256);
  });

  test('the slot of a moved binary without the binary (bytes from a peer, a lost list) is bus.bad_message', () => {
    const { whole, data } = payload();
    const message = encodeMoving(data, [whole]);
    rejectsWith(() => decodePayload(message.bytes), 'bus.bad_message');
    rejectsWith(() => decodePayload(message.bytes, 'owned'), 'bus.bad_message');
    rejectsWith(() => decodeMoved({ bytes: message.bytes, moved: [] }), 'bus.bad_message');
  });
});
