/**
 * Property-based tests of the codec: arbitrary frames and Values round trip;
 * random and mutated bytes never make the decoder throw, and whatever it
 * accepts re-encodes to an equal frame. Runs are bounded so the file takes a
 * few seconds; set FUZZ_RUNS for a longer session (e.g. FUZZ_RUNS=200000).
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { decodeBatch, decodeFrame, decodeValue, encodeBatch, encodeFrame, encodeValue } from './codec.ts';
import { isErrorCode, ProtocolError } from './errors.ts';
import { FRAME_SPECS, type FieldSpec, type MessageSpec } from './frames/index.ts';
import type { DecodeLimits, Frame, Value } from './messages.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
const params = { numRuns: RUNS };

const stringArb = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ maxLength: 60 }));

const valueArb: fc.Arbitrary<Value> = fc.letrec<{ value: Value }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', maxDepth: 6 },
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: 0, max: 200 }),
    fc.maxSafeInteger(),
    fc.double(),
    stringArb,
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie('value'), { maxLength: 6 }),
    fc.dictionary(stringArb, tie('value'), { maxKeys: 6, noNullPrototype: true }),
  ),
})).value;

function fieldArb(field: FieldSpec): fc.Arbitrary<unknown> {
  switch (field.type) {
    case 'uint':
      return fc.oneof(fc.nat(300), fc.maxSafeNat());
    case 'sint':
      return fc.integer({ min: -(2 ** 52) + 1, max: 2 ** 52 - 1 });
    case 'bool':
      return fc.boolean();
    case 'string':
      return stringArb;
    case 'strings':
      return fc.array(stringArb, { maxLength: 5 });
    case 'value':
      return valueArb;
    case 'message':
      return messageArb(field.message!);
  }
}

/** Built from the schemas, so a field added to a frame kind is fuzzed without touching this file. */
function messageArb(spec: MessageSpec, extra: Record<string, fc.Arbitrary<unknown>> = {}): fc.Arbitrary<any> {
  const model: Record<string, fc.Arbitrary<unknown>> = { ...extra };
  for (const f of spec.fields) model[f.name] = fieldArb(f);
  const requiredKeys = [...Object.keys(extra), ...spec.fields.filter((f) => f.required).map((f) => f.name)];
  return fc.record(model, { requiredKeys, noNullPrototype: true });
}

const frameArb: fc.Arbitrary<Frame> = fc.oneof(
  ...FRAME_SPECS.map((spec) => messageArb(spec, { kind: fc.constant(spec.kind) })),
);

type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; byte: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; count: number }
  | { op: 'truncate'; at: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), byte: fc.nat(255) }),
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 9 }),
  }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
);

function mutate(input: Uint8Array, mutations: Mutation[]): Uint8Array {
  let b = Uint8Array.from(input);
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : m.at % b.length;
    switch (m.op) {
      case 'flip':
        if (b.length > 0) b[at]! ^= 1 << m.bit;
        break;
      case 'set':
        if (b.length > 0) b[at] = m.byte;
        break;
      case 'insert': {
        const next = new Uint8Array(b.length + m.bytes.length);
        next.set(b.subarray(0, at));
        next.set(m.bytes, at);
        next.set(b.subarray(at), at + m.bytes.length);
        b = next;
        break;
      }
      case 'delete':
        b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + m.count)]);
        break;
      case 'truncate':
        b = b.slice(0, at);
        break;
    }
  }
  return b;
}

/**
 * The decoder's contract on arbitrary input: it returns (never throws) either
 * a ProtocolError with a registry code, or a frame that encodes again and
 * decodes to an equal frame.
 */
function assertDecoderContract(bytes: Uint8Array, limits?: Partial<DecodeLimits>): void {
  const r = decodeFrame(bytes, limits);
  if (!r.ok) {
    assert.ok(r.error instanceof ProtocolError);
    assert.ok(isErrorCode(r.error.code), r.error.code);
    assert.ok(r.error.code.startsWith('protocol.'), r.error.code);
    return;
  }
  const again = encodeFrame(r.frame, limits);
  assert.ok(again.length <= bytes.length, 'a decoded frame never re-encodes larger');
  const r2 = decodeFrame(again, limits);
  assert.ok(r2.ok);
  assert.deepStrictEqual(r2.frame, r.frame);
}

describe('fuzz: round trips', () => {
  test('arbitrary Values round trip', () => {
    fc.assert(
      fc.property(valueArb, (value) => {
        const r = decodeValue(encodeValue(value));
        assert.ok(r.ok);
        assert.deepStrictEqual(r.value, value);
      }),
      params,
    );
  });

  test('arbitrary frames of every kind round trip, canonically', () => {
    fc.assert(
      fc.property(frameArb, (frame) => {
        const bytes = encodeFrame(frame);
        const r = decodeFrame(bytes);
        if (!r.ok) assert.fail(r.error.message);
        assert.deepStrictEqual(r.frame, frame);
        assert.deepStrictEqual(encodeFrame(r.frame), bytes);
      }),
      params,
    );
  });

  test('arbitrary batches round trip', () => {
    fc.assert(
      fc.property(fc.array(frameArb, { maxLength: 8 }), (frames) => {
        const encoded = frames.map((f) => encodeFrame(f));
        const r = decodeBatch(encodeBatch(encoded));
        assert.ok(r.ok);
        assert.deepStrictEqual(
          r.frames.map((f) => Array.from(f)),
          encoded.map((f) => Array.from(f)),
        );
      }),
      { numRuns: Math.ceil(RUNS / 4) },
    );
  });
});

describe('fuzz: hostile bytes', () => {
  test('random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => assertDecoderContract(bytes)),
      params,
    );
  });

  test('random bytes behind a valid version and kind', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 11 }), fc.uint8Array({ maxLength: 64 }), (kind, rest) =>
        assertDecoderContract(Uint8Array.from([1, kind, ...rest])),
      ),
      params,
    );
  });

  test('mutated valid frames (bit flips, overwrites, insertions, deletions, truncation)', () => {
    fc.assert(
      fc.property(frameArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (frame, mutations) =>
        assertDecoderContract(mutate(encodeFrame(frame), mutations)),
      ),
      params,
    );
  });

  test('mutated frames under tight limits', () => {
    const tight: Partial<DecodeLimits> = {
      maxFrameBytes: 200,
      maxStringBytes: 8,
      maxBytesLength: 8,
      maxListLength: 3,
      maxMapEntries: 3,
      maxDepth: 2,
    };
    fc.assert(
      fc.property(frameArb, fc.array(mutationArb, { maxLength: 3 }), (frame, mutations) =>
        assertDecoderContract(mutate(encodeFrame(frame), mutations), tight),
      ),
      params,
    );
  });

  test('random and mutated Values', () => {
    fc.assert(
      fc.property(valueArb, fc.array(mutationArb, { maxLength: 3 }), (value, mutations) => {
        const r = decodeValue(mutate(encodeValue(value), mutations));
        if (!r.ok) {
          assert.ok(isErrorCode(r.error.code));
          return;
        }
        const r2 = decodeValue(encodeValue(r.value));
        assert.ok(r2.ok);
        assert.deepStrictEqual(r2.value, r.value);
      }),
      params,
    );
  });

  test('random and mutated batches', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { maxLength: 5 }),
        fc.array(mutationArb, { maxLength: 3 }),
        fc.integer({ min: 0, max: 6 }),
        (frames, mutations, maxBatchFrames) => {
          const batch = mutate(encodeBatch(frames.map((f) => encodeFrame(f))), mutations);
          const r = decodeBatch(batch, { maxBatchFrames });
          if (!r.ok) {
            assert.ok(isErrorCode(r.error.code));
            return;
          }
          assert.ok(r.frames.length <= maxBatchFrames);
          for (const f of r.frames) assertDecoderContract(f);
        },
      ),
      params,
    );
  });
});
