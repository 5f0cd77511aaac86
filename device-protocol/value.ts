/**
 * The dynamic Value encoding used for request, response and event bodies:
 * one tag byte, then the payload. See SPEC.md §2.5.
 *
 * Small unsigned integers (0..127) are the tag itself (0x80 | n): counters,
 * flags and enum-like numbers then cost one byte, as in MessagePack.
 */

import { type ByteReader, type ByteWriter, fail } from './bytes.ts';
import type { DecodeLimits, Value } from './messages.ts';

export const ValueTag = {
  Null: 0x00,
  False: 0x01,
  True: 0x02,
  /** Unsigned integer as a varint: 0 ≤ n ≤ 2^53-1. */
  Uint: 0x03,
  /** Negative integer -1 - n, with n a varint: -(2^53-1) ≤ value ≤ -1. */
  NegInt: 0x04,
  /** IEEE-754 double, 8 bytes little-endian: non-integers, -0, NaN, ±Infinity, integers beyond 2^53-1. */
  Float64: 0x05,
  /** varint byte length, then UTF-8. */
  String: 0x06,
  /** varint length, then raw bytes. */
  Bytes: 0x07,
  /** varint count, then that many Values. */
  List: 0x08,
  /** varint count, then that many (varint length + UTF-8 key, Value) pairs. */
  Map: 0x09,
  /** 0x80..0xFF: the unsigned integer (tag & 0x7f), no payload. */
  SmallUint: 0x80,
} as const;

/**
 * Appends `value` to `w`. Throws ProtocolError: protocol.limit when a limit
 * would be broken (the peer would refuse the frame anyway, and a cyclic value
 * ends at maxDepth instead of overflowing the stack), protocol.bad_frame for
 * anything that is not a Value (undefined in a list, a Date, a Map, a function…).
 * `undefined` map entries are skipped, as JSON.stringify does.
 */
export function writeValue(
  w: ByteWriter,
  value: unknown,
  limits: DecodeLimits,
  depth: number,
  field: string,
): void {
  if (value === null) {
    w.byte(ValueTag.Null);
    return;
  }
  switch (typeof value) {
    case 'boolean':
      w.byte(value ? ValueTag.True : ValueTag.False);
      return;
    case 'number':
      if (Number.isSafeInteger(value) && !Object.is(value, -0)) {
        if (value >= 0) {
          if (value < 0x80) {
            w.byte(ValueTag.SmallUint | value);
          } else {
            w.byte(ValueTag.Uint);
            w.varint(value);
          }
        } else {
          w.byte(ValueTag.NegInt);
          w.varint(-value - 1);
        }
      } else {
        w.byte(ValueTag.Float64);
        w.float64(value);
      }
      return;
    case 'string': {
      w.byte(ValueTag.String);
      const len = w.string(value);
      if (len > limits.maxStringBytes) {
        fail('protocol.limit', `string of ${len} bytes exceeds the limit of ${limits.maxStringBytes}`, field);
      }
      return;
    }
    case 'object':
      if (value instanceof Uint8Array) {
        if (value.length > limits.maxBytesLength) {
          fail(
            'protocol.limit',
            `bytes of length ${value.length} exceed the limit of ${limits.maxBytesLength}`,
            field,
          );
        }
        w.byte(ValueTag.Bytes);
        w.bytes(value);
        return;
      }
      if (depth >= limits.maxDepth) fail('protocol.limit', `nesting deeper than ${limits.maxDepth}`, field);
      if (Array.isArray(value)) {
        const n = value.length;
        if (n > limits.maxListLength) {
          fail('protocol.limit', `list of ${n} items exceeds the limit of ${limits.maxListLength}`, field);
        }
        w.byte(ValueTag.List);
        w.varint(n);
        for (let i = 0; i < n; i++) {
          const item = value[i];
          if (item === undefined) fail('protocol.bad_frame', 'undefined is not a Value (list item)', field);
          writeValue(w, item, limits, depth + 1, field);
        }
        return;
      }
      {
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) break;
        const obj = value as Record<string, unknown>;
        const keys = Object.keys(obj);
        let count = 0;
        for (let i = 0; i < keys.length; i++) if (obj[keys[i]!] !== undefined) count++;
        if (count > limits.maxMapEntries) {
          fail(
            'protocol.limit',
            `map of ${count} entries exceeds the limit of ${limits.maxMapEntries}`,
            field,
          );
        }
        w.byte(ValueTag.Map);
        w.varint(count);
        for (let i = 0; i < keys.length; i++) {
          const key = keys[i]!;
          const item = obj[key];
          if (item === undefined) continue;
          const len = w.string(key);
          if (len > limits.maxStringBytes) {
            fail(
              'protocol.limit',
              `map key of ${len} bytes exceeds the limit of ${limits.maxStringBytes}`,
              field,
            );
          }
          writeValue(w, item, limits, depth + 1, field);
        }
        return;
      }
  }
  fail('protocol.bad_frame', `${describe(value)} is not a Value`, field);
}

function describe(value: unknown): string {
  if (typeof value !== 'object' || value === null) return typeof value;
  return value.constructor?.name ?? 'object';
}

/**
 * Reads one Value. Every declared length and count is checked against the
 * limits and against the bytes left before anything is allocated.
 * Maps come back as plain objects; a `__proto__` key becomes an own property
 * (never the prototype). A key that appears twice is a bad frame: first-wins
 * and last-wins readers would otherwise see different bodies.
 */
export function readValue(r: ByteReader, limits: DecodeLimits, depth: number, field: string): Value {
  const tag = r.byte(field);
  if (tag >= ValueTag.SmallUint) return tag & 0x7f;
  switch (tag) {
    case ValueTag.Null:
      return null;
    case ValueTag.False:
      return false;
    case ValueTag.True:
      return true;
    case ValueTag.Uint:
      return r.varint(field);
    case ValueTag.NegInt: {
      const n = r.varint(field);
      if (n >= Number.MAX_SAFE_INTEGER) fail('protocol.bad_frame', 'negative integer below -(2^53-1)', field);
      return -n - 1;
    }
    case ValueTag.Float64:
      return r.float64(field);
    case ValueTag.String:
      return r.utf8(r.length(limits.maxStringBytes, 'string', field), field);
    case ValueTag.Bytes:
      return r.bytes(r.length(limits.maxBytesLength, 'bytes', field));
    case ValueTag.List: {
      if (depth >= limits.maxDepth) fail('protocol.limit', `nesting deeper than ${limits.maxDepth}`, field);
      const n = r.varint(field);
      if (n > limits.maxListLength) {
        fail('protocol.limit', `list of ${n} items exceeds the limit of ${limits.maxListLength}`, field);
      }
      // Every item takes at least one byte: a count beyond the bytes left is a lie.
      if (n > r.remaining) fail('protocol.bad_frame', 'list runs past the end of the frame', field);
      const list: Value[] = [];
      for (let i = 0; i < n; i++) list.push(readValue(r, limits, depth + 1, field));
      return list;
    }
    case ValueTag.Map: {
      if (depth >= limits.maxDepth) fail('protocol.limit', `nesting deeper than ${limits.maxDepth}`, field);
      const n = r.varint(field);
      if (n > limits.maxMapEntries) {
        fail('protocol.limit', `map of ${n} entries exceeds the limit of ${limits.maxMapEntries}`, field);
      }
      // Every entry takes at least two bytes (key length, value tag).
      if (n * 2 > r.remaining) fail('protocol.bad_frame', 'map runs past the end of the frame', field);
      const map: { [key: string]: Value } = {};
      for (let i = 0; i < n; i++) {
        const key = r.utf8(r.length(limits.maxStringBytes, 'map key', field), field);
        if (Object.hasOwn(map, key))
          fail('protocol.bad_frame', `duplicate map key ${JSON.stringify(key)}`, field);
        const item = readValue(r, limits, depth + 1, field);
        if (key === '__proto__') {
          Object.defineProperty(map, key, {
            value: item,
            enumerable: true,
            writable: true,
            configurable: true,
          });
        } else {
          map[key] = item;
        }
      }
      return map;
    }
  }
  return fail('protocol.bad_frame', `unknown value tag 0x${tag.toString(16).padStart(2, '0')}`, field);
}
