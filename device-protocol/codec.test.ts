import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decodeBatch,
  decodeFrame,
  decodeValue,
  encodeBatch,
  encodeFrame,
  encodeValue,
  resolveLimits,
} from './codec.ts';
import { type ErrorCode, GatewayError, isErrorCode, ProtocolError } from './errors.ts';
import { FRAME_SPECS } from './frames/index.ts';
import { DEFAULT_LIMITS, type DecodeLimits, type Frame, Kind, type Value } from './messages.ts';
import { FULL_FRAMES, MINIMAL_FRAMES } from '../testing/index.ts';

const bytes = (...b: number[]) => new Uint8Array(b);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const fromHex = (h: string) => new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
const utf8 = (s: string) => [...new TextEncoder().encode(s)];

function decodeOk(b: Uint8Array, limits?: Partial<DecodeLimits>): Frame {
  const r = decodeFrame(b, limits);
  if (!r.ok) assert.fail(`expected ok, got ${r.error.code}: ${r.error.message}`);
  return r.frame;
}

function decodeErr(b: Uint8Array, code: ErrorCode, limits?: Partial<DecodeLimits>): ProtocolError {
  const r = decodeFrame(b, limits);
  if (r.ok) assert.fail(`expected ${code}, got a frame: ${JSON.stringify(r.frame)}`);
  assert.ok(r.error instanceof ProtocolError);
  assert.equal(r.error.code, code, r.error.message);
  return r.error;
}

function encodeErr(frame: unknown, code: ErrorCode, limits?: Partial<DecodeLimits>): GatewayError {
  try {
    encodeFrame(frame as Frame, limits);
  } catch (err) {
    assert.ok(err instanceof GatewayError, String(err));
    assert.equal(err.code, code, err.message);
    return err;
  }
  return assert.fail(`expected encodeFrame to throw ${code}`);
}

function event(body: Value | undefined, name = 'e'): Frame {
  return body === undefined ? { kind: Kind.Event, seq: 1, name } : { kind: Kind.Event, seq: 1, name, body };
}

describe('round trip', () => {
  test('the samples cover every kind, and the full samples every field', () => {
    assert.deepEqual(
      FULL_FRAMES.map((f) => f.kind),
      FRAME_SPECS.map((s) => s.kind),
    );
    assert.deepEqual(
      MINIMAL_FRAMES.map((f) => f.kind),
      FRAME_SPECS.map((s) => s.kind),
    );
    for (const spec of FRAME_SPECS) {
      const full = FULL_FRAMES.find((f) => f.kind === spec.kind) as unknown as Record<string, unknown>;
      const minimal = MINIMAL_FRAMES.find((f) => f.kind === spec.kind) as unknown as Record<string, unknown>;
      for (const field of spec.fields) {
        assert.ok(full[field.name] !== undefined, `${spec.name}.${field.name} missing in FULL_FRAMES`);
        assert.equal(
          minimal[field.name] !== undefined,
          field.required,
          `${spec.name}.${field.name} in MINIMAL_FRAMES`,
        );
        if (field.message) {
          const nested = full[field.name] as Record<string, unknown>;
          for (const sub of field.message.fields)
            assert.ok(nested[sub.name] !== undefined, `${field.name}.${sub.name}`);
        }
      }
    }
  });

  for (const [label, samples] of [
    ['all optional fields present', FULL_FRAMES],
    ['only required fields', MINIMAL_FRAMES],
  ] as const) {
    for (const frame of samples) {
      test(`${Kind[frame.kind]}, ${label}`, () => {
        const encoded = encodeFrame(frame);
        assert.equal(encoded[0], 1, 'version byte');
        assert.deepStrictEqual(decodeOk(encoded), frame);
        // Canonical: encoding what was decoded gives the same bytes.
        assert.equal(hex(encodeFrame(decodeOk(encoded))), hex(encoded));
      });
    }
  }

  test('empty capabilities and an empty imageFormats list survive (present, not absent)', () => {
    const hello: Frame = { kind: Kind.Hello, version: 1, imei: '1', caps: { imageFormats: [] } };
    assert.deepStrictEqual(decodeOk(encodeFrame(hello)), hello);
    const bare: Frame = { kind: Kind.Hello, version: 1, imei: '1', caps: {} };
    assert.deepStrictEqual(decodeOk(encodeFrame(bare)), bare);
  });

  test('a null body is present, an absent body is absent', () => {
    const withNull = decodeOk(encodeFrame(event(null)));
    assert.ok('body' in withNull);
    assert.equal((withNull as { body?: Value }).body, null);
    assert.ok(!('body' in decodeOk(encodeFrame(event(undefined)))));
  });

  test('integers at the edges of every field', () => {
    for (const seq of [
      0,
      1,
      127,
      128,
      16_383,
      16_384,
      2 ** 31 - 1,
      2 ** 31,
      2 ** 32,
      Number.MAX_SAFE_INTEGER,
    ]) {
      const f: Frame = { kind: Kind.Ack, seq };
      assert.deepStrictEqual(decodeOk(encodeFrame(f)), f);
    }
  });

  test('strings: unicode, BOM, every length class of the prefix', () => {
    const samples = [
      '',
      'a',
      'é',
      '€',
      '😀',
      '\uFEFFstarts with a BOM',
      'x'.repeat(42),
      'x'.repeat(43),
      '€'.repeat(42),
      '€'.repeat(43),
      'x'.repeat(127),
      'x'.repeat(128),
      '😀'.repeat(100),
      'y'.repeat(70_000),
      'a\u0000b',
    ];
    for (const s of samples) {
      const f = event(s, s);
      assert.deepStrictEqual(decodeOk(encodeFrame(f)), f, `length ${s.length}`);
    }
  });

  test('lone surrogates are sent as U+FFFD, like TextEncoder', () => {
    for (const s of ['\uD800', 'a\uDC00b', '\uD83D', 'x'.repeat(50) + '\uD800']) {
      const f = decodeOk(encodeFrame(event(s, s))) as { name: string; body: string };
      const expected = new TextDecoder().decode(new TextEncoder().encode(s));
      assert.equal(f.name, expected);
      assert.equal(f.body, expected);
    }
  });

  test('values: every tag', () => {
    const body: Value = {
      nil: null,
      yes: true,
      no: false,
      small: 127,
      big: 128,
      max: Number.MAX_SAFE_INTEGER,
      neg: -1,
      min: -Number.MAX_SAFE_INTEGER,
      beyond: 2 ** 60,
      float: 3.25,
      negZero: -0,
      nan: Number.NaN,
      inf: Number.POSITIVE_INFINITY,
      ninf: Number.NEGATIVE_INFINITY,
      str: 'Grüße',
      bin: bytes(0, 1, 255),
      emptyBin: bytes(),
      list: [1, 'a', [null, [{}]]],
      map: { nested: { deeper: [] } },
      '': 'empty key',
    };
    const f = event(body);
    assert.deepStrictEqual(decodeOk(encodeFrame(f)), f);
  });

  test('value encodings are pinned (SPEC.md §2.5)', () => {
    const cases: [Value, string][] = [
      [null, '00'],
      [false, '01'],
      [true, '02'],
      [0, '80'],
      [127, 'ff'],
      [128, '038001'],
      [Number.MAX_SAFE_INTEGER, '03ffffffffffffff0f'],
      [-1, '0400'],
      [-128, '047f'],
      [-Number.MAX_SAFE_INTEGER, '04feffffffffffff0f'],
      [1.5, '05000000000000f83f'],
      [-0, '050000000000000080'],
      [2 ** 53, '050000000000004043'],
      ['a', '060161'],
      [bytes(1, 2), '07020102'],
      [[], '0800'],
      [[1, 2], '08028182'],
      [{}, '0900'],
      [{ a: 1 }, '0901016181'],
    ];
    for (const [value, expected] of cases) {
      assert.equal(hex(encodeValue(value)), expected, String(value));
      const back = decodeValue(fromHex(expected));
      assert.ok(back.ok);
      assert.deepStrictEqual(back.value, value);
    }
    // A small integer sent with the long tag is accepted (decoders are liberal here).
    assert.deepStrictEqual(decodeValue(fromHex('0305')), { ok: true, value: 5 });
  });

  test('a Buffer slice with a byteOffset decodes like a fresh array', () => {
    const encoded = encodeFrame(FULL_FRAMES[8]!);
    const pool = Buffer.alloc(encoded.length + 20, 0xee);
    pool.set(encoded, 7);
    assert.deepStrictEqual(decodeOk(pool.subarray(7, 7 + encoded.length)), FULL_FRAMES[8]);
  });

  test('decoding a Buffer yields plain Uint8Array bytes that do not alias the input', () => {
    const buf = Buffer.from(encodeFrame(event(bytes(1, 2, 3))));
    const f = decodeOk(buf) as { body: Uint8Array };
    assert.equal(Object.getPrototypeOf(f.body), Uint8Array.prototype);
    buf.fill(0);
    assert.deepStrictEqual(f.body, bytes(1, 2, 3));
  });

  test('a big frame does not break the reused encoder buffer', () => {
    const big = event({ blob: new Uint8Array(300_000).fill(7), text: 'z'.repeat(200_000) });
    assert.deepStrictEqual(decodeOk(encodeFrame(big)), big);
    const small = FULL_FRAMES[3]!;
    assert.deepStrictEqual(decodeOk(encodeFrame(small)), small);
  });

  test('encodeFrame returns a fresh array each time', () => {
    const a = encodeFrame({ kind: Kind.Ack, seq: 1 });
    const b = encodeFrame({ kind: Kind.Ack, seq: 2 });
    assert.equal(hex(a), '01040801');
    assert.equal(hex(b), '01040802');
  });

  test('a getter that re-enters encodeFrame does not corrupt the outer frame', () => {
    const body = {
      get inner() {
        return hex(encodeFrame({ kind: Kind.Ack, seq: 5 }));
      },
    };
    const f = decodeOk(encodeFrame(event(body as unknown as Value))) as { body: Value };
    assert.deepStrictEqual(f.body, { inner: '01040805' });
  });
});

describe('forward compatibility', () => {
  test('unknown fields of every wire type are skipped', () => {
    const frame = bytes(
      1,
      Kind.Ack,
      0x48, // field 9, wire 0
      0x96,
      0x01,
      0x08, // field 1 (seq), wire 0
      41,
      0x51, // field 10, wire 1
      0x03,
      0x5a, // field 11, wire 2
      3,
      ...utf8('abc'),
      0x65, // field 12, wire 5
      1,
      2,
      3,
      4,
      5,
      6,
      7,
      8,
      0xc0, // field 1000, wire 0 (two-byte key)
      0x3e,
      0x00,
    );
    assert.deepStrictEqual(decodeOk(frame), { kind: Kind.Ack, seq: 41 });
  });

  test('unknown fields inside nested capabilities are skipped', () => {
    const frame = bytes(1, 1, 0x08, 1, 0x12, 1, ...utf8('1'), 0x32, 5, 0x08, 0x10, 0x7a, 1, 0x41);
    assert.deepStrictEqual(decodeOk(frame), {
      kind: Kind.Hello,
      version: 1,
      imei: '1',
      caps: { screenWidth: 16 },
    });
  });

  test('fields may come in any order', () => {
    const frame = bytes(1, Kind.Ping, 0x08, 9);
    assert.deepStrictEqual(decodeOk(frame), { kind: Kind.Ping, nonce: 9 });
    const event = bytes(1, Kind.Event, 0x12, 1, ...utf8('n'), 0x08, 3);
    assert.deepStrictEqual(decodeOk(event), { kind: Kind.Event, seq: 3, name: 'n' });
  });
});

describe('decode errors', () => {
  test('empty frame', () => {
    decodeErr(bytes(), 'protocol.bad_frame');
  });

  test('version byte', () => {
    decodeErr(bytes(0, 4, 8, 1), 'protocol.unsupported_version');
    decodeErr(bytes(2, 4, 8, 1), 'protocol.unsupported_version');
    decodeErr(bytes(0xff), 'protocol.unsupported_version');
  });

  test('kind', () => {
    decodeErr(bytes(1), 'protocol.bad_frame');
    decodeErr(bytes(1, 0), 'protocol.unknown_kind');
    decodeErr(bytes(1, 12), 'protocol.unknown_kind');
    decodeErr(bytes(1, 0xff, 0x7f), 'protocol.unknown_kind');
  });

  test('missing required field names it', () => {
    assert.equal(decodeErr(bytes(1, Kind.Ack), 'protocol.bad_frame').field, 'seq');
    const noImei = bytes(1, Kind.Hello, 0x08, 1);
    assert.equal(decodeErr(noImei, 'protocol.bad_frame').field, 'imei');
    const errorNoFatal = bytes(1, Kind.Error, 0x1a, 1, 0x61, 0x22, 0);
    assert.equal(decodeErr(errorNoFatal, 'protocol.bad_frame').field, 'fatal');
  });

  test('malformed fields', () => {
    // Known field with the wrong wire type.
    assert.equal(decodeErr(bytes(1, Kind.Ack, 0x0a, 1, 0x61), 'protocol.bad_frame').field, 'seq');
    // The same field twice.
    assert.equal(decodeErr(bytes(1, Kind.Ack, 0x08, 1, 0x08, 2), 'protocol.bad_frame').field, 'seq');
    // Field number 0.
    decodeErr(bytes(1, Kind.Ack, 0x00, 1, 0x08, 1), 'protocol.bad_frame');
    // Wire types 3, 4, 6, 7 cannot be skipped.
    for (const wire of [3, 4, 6, 7])
      decodeErr(bytes(1, Kind.Ack, 0x08, 1, (9 << 3) | wire, 0), 'protocol.bad_frame');
    // A bool that is neither 0 nor 1.
    const fatal2 = bytes(1, Kind.Error, 0x1a, 1, 0x61, 0x22, 0, 0x28, 2);
    assert.equal(decodeErr(fatal2, 'protocol.bad_frame').field, 'fatal');
    // Length past the end (string, skipped field, value, nested message).
    decodeErr(bytes(1, Kind.Event, 0x08, 1, 0x12, 5, 0x61), 'protocol.bad_frame');
    decodeErr(bytes(1, Kind.Ack, 0x08, 1, 0x5a, 9, 0), 'protocol.bad_frame');
    decodeErr(bytes(1, Kind.Event, 0x08, 1, 0x12, 0, 0x1a, 3, 0x80), 'protocol.bad_frame');
    decodeErr(bytes(1, Kind.Hello, 0x08, 1, 0x12, 0, 0x32, 4, 0x08), 'protocol.bad_frame');
    // A skipped fixed64 cut short.
    decodeErr(bytes(1, Kind.Ack, 0x08, 1, 0x65, 1, 2, 3), 'protocol.bad_frame');
    // Nested message field whose content overruns its own length.
    decodeErr(bytes(1, Kind.Hello, 0x08, 1, 0x12, 0, 0x32, 1, 0x08, 0x10), 'protocol.bad_frame');
  });

  test('varints', () => {
    // Over-long: 0 written in two bytes.
    decodeErr(bytes(1, Kind.Ack, 0x08, 0x80, 0x00), 'protocol.bad_frame');
    // Nine bytes.
    decodeErr(
      bytes(1, Kind.Ack, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
      'protocol.bad_frame',
    );
    // 2^53 does not fit a JavaScript number exactly.
    decodeErr(bytes(1, Kind.Ack, 0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10), 'protocol.bad_frame');
    // 2^53-1 does.
    assert.deepStrictEqual(
      decodeOk(bytes(1, Kind.Ack, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f)),
      {
        kind: Kind.Ack,
        seq: Number.MAX_SAFE_INTEGER,
      },
    );
    // Cut inside a varint.
    decodeErr(bytes(1, Kind.Ack, 0x08, 0x80), 'protocol.bad_frame');
  });

  test('invalid UTF-8 is a bad frame, short or long', () => {
    for (const bad of [
      [0xc3, 0x28],
      [0xc0, 0x80],
      [0xed, 0xa0, 0x80],
      [0xff],
      [...Array(40).fill(0x61), 0xe2, 0x82],
    ]) {
      const err = decodeErr(bytes(1, Kind.Event, 0x08, 1, 0x12, bad.length, ...bad), 'protocol.bad_frame');
      assert.equal(err.field, 'name');
      const inBody = bytes(1, Kind.Event, 0x08, 1, 0x12, 0, 0x1a, bad.length + 2, 0x06, bad.length, ...bad);
      assert.equal(decodeErr(inBody, 'protocol.bad_frame').field, 'body');
    }
  });

  test('values', () => {
    const withBody = (...value: number[]) =>
      bytes(1, Kind.Event, 0x08, 1, 0x12, 0, 0x1a, value.length, ...value);
    // Unknown tags.
    for (const tag of [0x0a, 0x10, 0x7f]) decodeErr(withBody(tag), 'protocol.bad_frame');
    // Trailing bytes after the value inside the body field.
    decodeErr(withBody(0x00, 0x00), 'protocol.bad_frame');
    // Empty body field.
    decodeErr(withBody(), 'protocol.bad_frame');
    // Negative integer below -(2^53-1).
    decodeErr(withBody(0x04, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f), 'protocol.bad_frame');
    // Truncated float.
    decodeErr(withBody(0x05, 0, 0, 0), 'protocol.bad_frame');
    // Duplicate map key.
    decodeErr(withBody(0x09, 2, 1, 0x61, 0x81, 1, 0x61, 0x82), 'protocol.bad_frame');
    // A list or map count that the bytes left cannot hold: refused before allocating.
    decodeErr(withBody(0x08, 0x05, 0x80), 'protocol.bad_frame');
    decodeErr(withBody(0x09, 0x02, 0x01, 0x61, 0x80), 'protocol.bad_frame');
    const hugeCount = bytes(1, Kind.Event, 0x08, 1, 0x12, 0, 0x1a, 5, 0x08, 0xff, 0xff, 0xff, 0x03);
    decodeErr(hugeCount, 'protocol.limit');
    decodeErr(hugeCount, 'protocol.bad_frame', { maxListLength: 2 ** 40 });
    // A string length far beyond the frame.
    decodeErr(withBody(0x06, 0xff, 0xff, 0x03), 'protocol.bad_frame');
  });

  test('__proto__ keys do not touch any prototype', () => {
    const body = JSON.parse(
      '{"__proto__": {"polluted": true}, "constructor": {"prototype": {"polluted": true}}}',
    );
    const decoded = decodeOk(encodeFrame(event(body))) as { body: Record<string, unknown> };
    assert.equal(Object.getPrototypeOf(decoded.body), Object.prototype);
    assert.ok(Object.hasOwn(decoded.body, '__proto__'));
    assert.deepStrictEqual(Object.getOwnPropertyDescriptor(decoded.body, '__proto__')?.value, {
      polluted: true,
    });
    assert.equal((decoded.body as { polluted?: unknown }).polluted, undefined);
    assert.equal(({} as { polluted?: unknown }).polluted, undefined);
    assert.deepStrictEqual(Object.keys(decoded.body), ['__proto__', 'constructor']);
    // And it re-encodes with the key intact.
    assert.equal(hex(encodeFrame(decodeOk(encodeFrame(event(body))))), hex(encodeFrame(event(body))));
  });

  test('not bytes at all', () => {
    for (const input of [null, undefined, 'str', [1, 4, 8, 1], {}]) {
      const r = decodeFrame(input as unknown as Uint8Array);
      assert.ok(!r.ok);
      assert.equal(r.error.code, 'protocol.bad_frame');
    }
  });

  test('truncation at every offset: minimal frames always fail, full frames fail or decode a subset', () => {
    for (const frame of MINIMAL_FRAMES) {
      const b = encodeFrame(frame);
      for (let i = 0; i < b.length; i++) {
        const r = decodeFrame(b.subarray(0, i));
        assert.ok(!r.ok, `${Kind[frame.kind]} cut at ${i}`);
        assert.ok(isErrorCode(r.error.code));
      }
    }
    for (const frame of FULL_FRAMES) {
      const b = encodeFrame(frame);
      for (let i = 0; i < b.length; i++) {
        const r = decodeFrame(b.subarray(0, i));
        if (!r.ok) {
          assert.ok(r.error.code.startsWith('protocol.'), r.error.code);
          continue;
        }
        // Cut exactly at a field boundary after every required field: a valid frame with fewer fields.
        const got = r.frame as unknown as Record<string, unknown>;
        const full = frame as unknown as Record<string, unknown>;
        for (const key of Object.keys(got)) assert.deepStrictEqual(got[key], full[key]);
      }
    }
  });
});

describe('encode errors', () => {
  test('bad integers', () => {
    for (const seq of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, '1', 1n]) {
      assert.equal(encodeErr({ kind: Kind.Ack, seq }, 'protocol.bad_frame').field, 'seq');
    }
  });

  test('wrong types and missing fields', () => {
    assert.equal(encodeErr({ kind: Kind.Ack }, 'protocol.bad_frame').field, 'seq');
    assert.equal(encodeErr({ kind: Kind.Event, seq: 1, name: 5 }, 'protocol.bad_frame').field, 'name');
    const badFatal = { kind: Kind.Error, code: 'x', message: '', fatal: 1 };
    assert.equal(encodeErr(badFatal, 'protocol.bad_frame').field, 'fatal');
    const badCaps = { kind: Kind.Hello, version: 1, imei: '1', caps: { imageFormats: [1] } };
    assert.equal(encodeErr(badCaps, 'protocol.bad_frame').field, 'caps.imageFormats');
    const capsNotObject = { kind: Kind.Hello, version: 1, imei: '1', caps: 'big' };
    assert.equal(encodeErr(capsNotObject, 'protocol.bad_frame').field, 'caps');
  });

  test('unknown kind or not a frame', () => {
    encodeErr({ kind: 99 }, 'protocol.unknown_kind');
    encodeErr({}, 'protocol.unknown_kind');
    encodeErr(null, 'protocol.bad_frame');
  });

  test('bodies that are not Values', () => {
    for (const body of [
      new Date(0),
      new Map(),
      () => 1,
      Symbol('s'),
      1n,
      [undefined],
      { nested: new Set() },
      new (class Thing {})(),
    ]) {
      assert.equal(encodeErr(event(body as unknown as Value), 'protocol.bad_frame').field, 'body');
    }
  });

  test('undefined map entries are left out, like JSON', () => {
    const f = decodeOk(encodeFrame(event({ a: 1, b: undefined } as unknown as Value))) as { body: Value };
    assert.deepStrictEqual(f.body, { a: 1 });
  });

  test('a null-prototype object encodes as a map', () => {
    const body = Object.assign(Object.create(null), { a: 1 });
    const f = decodeOk(encodeFrame(event(body))) as { body: Value };
    assert.deepStrictEqual(f.body, { a: 1 });
  });

  test('a cyclic body ends at maxDepth, not in a stack overflow', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    encodeErr(event(cyclic as Value), 'protocol.limit');
  });
});

/**
 * Every limit, hit exactly (ok) and by one more (error), on both sides:
 * the decoder refuses what the encoder with the same limits refuses.
 */
describe('limits', () => {
  function atAndOver(
    name: keyof DecodeLimits,
    limit: number,
    make: (n: number) => Frame,
    code: ErrorCode = 'protocol.limit',
  ): void {
    const limits = { [name]: limit };
    const at = make(limit);
    assert.deepStrictEqual(decodeOk(encodeFrame(at, limits), limits), at, `${name} at ${limit}`);
    const over = make(limit + 1);
    encodeErr(over, code, limits);
    const overBytes = encodeFrame(over, { [name]: limit + 1 });
    decodeErr(overBytes, code, limits);
  }

  test('resolveLimits fills defaults and ignores explicit undefined', () => {
    assert.equal(resolveLimits(), DEFAULT_LIMITS);
    assert.deepStrictEqual(resolveLimits({ maxDepth: undefined, maxListLength: 3 }), {
      ...DEFAULT_LIMITS,
      maxListLength: 3,
    });
  });

  test('maxFrameBytes, checked before parsing', () => {
    const frame = event('x'.repeat(100));
    const size = encodeFrame(frame).length;
    assert.deepStrictEqual(decodeOk(encodeFrame(frame), { maxFrameBytes: size }), frame);
    decodeErr(encodeFrame(frame), 'protocol.frame_too_large', { maxFrameBytes: size - 1 });
    encodeErr(frame, 'protocol.frame_too_large', { maxFrameBytes: size - 1 });
    // Garbage that would be a bad version is refused for its size first.
    decodeErr(new Uint8Array(11).fill(0xff), 'protocol.frame_too_large', { maxFrameBytes: 10 });
    decodeErr(new Uint8Array(DEFAULT_LIMITS.maxFrameBytes + 1), 'protocol.frame_too_large');
  });

  test('maxStringBytes: frame fields, body strings, map keys, capability lists', () => {
    atAndOver('maxStringBytes', 8, (n) => event(undefined, 'n'.repeat(n)));
    atAndOver('maxStringBytes', 9, (n) => event('é'.repeat(Math.floor(n / 2)) + 'x'.repeat(n % 2)));
    atAndOver('maxStringBytes', 8, (n) => event({ ['k'.repeat(n)]: 1 }));
    atAndOver('maxStringBytes', 8, (n) => ({
      kind: Kind.Hello,
      version: 1,
      imei: '1',
      caps: { imageFormats: ['f'.repeat(n)] },
    }));
    // The default, too.
    atAndOver('maxStringBytes', DEFAULT_LIMITS.maxStringBytes, (n) => event('s'.repeat(n)));
  });

  test('maxBytesLength', () => {
    atAndOver('maxBytesLength', 16, (n) => event(new Uint8Array(n)));
    atAndOver('maxBytesLength', 16, (n) => event({ nested: [new Uint8Array(n)] }));
  });

  test('maxListLength: body lists and capability lists', () => {
    atAndOver('maxListLength', 5, (n) => event(Array(n).fill(0)));
    atAndOver('maxListLength', 5, (n) => ({
      kind: Kind.Hello,
      version: 1,
      imei: '1',
      caps: { imageFormats: Array(n).fill('png') },
    }));
    atAndOver('maxListLength', DEFAULT_LIMITS.maxListLength, (n) => event(Array(n).fill(null)));
  });

  test('maxMapEntries', () => {
    const map = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
    atAndOver('maxMapEntries', 4, (n) => event(map(n)));
    atAndOver('maxMapEntries', DEFAULT_LIMITS.maxMapEntries, (n) => event(map(n)));
  });

  test('maxDepth: lists, maps and a mix', () => {
    const lists = (n: number): Value => (n === 0 ? 1 : [lists(n - 1)]);
    const maps = (n: number): Value => (n === 0 ? 'leaf' : { k: maps(n - 1) });
    const mixed = (n: number): Value => (n === 0 ? null : n % 2 ? [mixed(n - 1)] : { m: mixed(n - 1) });
    atAndOver('maxDepth', 3, (n) => event(lists(n)));
    atAndOver('maxDepth', 3, (n) => event(maps(n)));
    atAndOver('maxDepth', DEFAULT_LIMITS.maxDepth, (n) => event(mixed(n)));
    // Depth 0 allows scalars only.
    assert.deepStrictEqual(decodeOk(encodeFrame(event(5), { maxDepth: 0 }), { maxDepth: 0 }), event(5));
    decodeErr(encodeFrame(event([])), 'protocol.limit', { maxDepth: 0 });
  });
});

describe('batches', () => {
  const frames = FULL_FRAMES.map((f) => encodeFrame(f));

  test('round trip, including the empty batch', () => {
    const batch = encodeBatch(frames);
    const r = decodeBatch(batch);
    assert.ok(r.ok);
    assert.equal(r.frames.length, frames.length);
    assert.deepEqual(r.frames.map(hex), frames.map(hex));
    assert.deepStrictEqual(decodeBatch(encodeBatch([])), { ok: true, frames: [] });
    assert.equal(encodeBatch([]).length, 0);
  });

  test('layout: LEB128 length, then the frame', () => {
    const ack = encodeFrame({ kind: Kind.Ack, seq: 1 });
    const big = encodeFrame(event('x'.repeat(200)));
    const batch = encodeBatch([ack, big]);
    assert.equal(hex(batch.subarray(0, 5)), '0401040801');
    assert.equal(
      hex(batch.subarray(5, 7)),
      (big.length | 0x80).toString(16) + (big.length >> 7).toString(16).padStart(2, '0'),
    );
    assert.equal(batch.length, 5 + 2 + big.length);
  });

  test('maxBatchFrames at and over', () => {
    const four = encodeBatch(frames.slice(0, 4));
    const ok = decodeBatch(four, { maxBatchFrames: 4 });
    assert.ok(ok.ok);
    const over = decodeBatch(four, { maxBatchFrames: 3 });
    assert.ok(!over.ok);
    assert.equal(over.error.code, 'protocol.limit');
  });

  test('maxFrameBytes per frame, at and over', () => {
    const big = encodeFrame(event('x'.repeat(100)));
    const batch = encodeBatch([frames[3]!, big]);
    assert.ok(decodeBatch(batch, { maxFrameBytes: big.length }).ok);
    const over = decodeBatch(batch, { maxFrameBytes: big.length - 1 });
    assert.ok(!over.ok);
    assert.equal(over.error.code, 'protocol.frame_too_large');
  });

  test('truncated, empty frame, garbage', () => {
    const batch = encodeBatch(frames);
    for (let i = 1; i < batch.length; i++) {
      const r = decodeBatch(batch.subarray(0, i));
      // Cut exactly between frames is a shorter valid batch; anywhere else it is an error.
      if (r.ok) assert.ok(r.frames.length < frames.length);
      else assert.equal(r.error.code, 'protocol.bad_frame');
    }
    const empty = decodeBatch(bytes(0));
    assert.ok(!empty.ok);
    assert.equal(empty.error.code, 'protocol.bad_frame');
    const r = decodeBatch('nope' as unknown as Uint8Array);
    assert.ok(!r.ok);
  });
});
