/**
 * Values that break code: unicode edge cases, numbers at and past every
 * boundary a method might have, names that are properties of every object,
 * nesting at and past the codec's depth limit; and a short printable form of
 * any body for reports (a 200 KiB string or a Uint8Array does not belong in
 * a summary as is).
 */
import { DEFAULT_LIMITS } from '../../device-protocol/messages.ts';

/** Strings that trip parsers, normalisers, terminals, regexes and byte counting. */
export const EDGE_STRINGS: readonly string[] = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  '\r\n',
  '\r\nX-Injected: 1\r\n',
  'a\r\n.\r\n',
  '\t\v\f',
  '\u00e9',
  'e\u0301', // é as e + combining accent (NFD)
  '\u200b\u200c\u200d\u2060', // zero-width
  '\u202e\u2066evil', // right-to-left override
  '\u2028\u2029',
  '\ufeff', // BOM
  '\ufffd\uffff\ufffe',
  '\ud800', // lone high surrogate: TextEncoder writes U+FFFD
  '\udfff',
  '\ud83d\ude00', // 😀
  '\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67', // family: one grapheme, 8 code units
  'Z\u0351\u0352\u0353\u0354\u0355\u0356\u0357\u0358\u0359', // combining pile-up
  '\u0130\u0131\u00df\ufb03', // case-mapping changes length: İ ı ß ﬃ
  'ＩＮＢＯＸ', // full-width INBOX
  'INBOX',
  'inbox',
  'INBOX/../../etc',
  '../../../../etc/passwd',
  '%00%2e%2e%2f',
  '*',
  '%',
  '"quoted"',
  '{5}\r\nhello', // IMAP literal
  '<script>alert(1)</script>',
  "'; DROP TABLE devices; --",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4j-style lookup, as a literal on purpose
  '${jndi:ldap://x}',
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'a@b',
  'a@b@c',
  '@',
  'user@',
  '@domain',
  'user@[127.0.0.1]',
  'user@xn--nxasmq6b.example',
  'alice@example.test/resource',
  'x0000000000000000',
  'm0000000000000000',
  '0',
  '-1',
  '1e999',
  'NaN',
  'null',
  'true',
];

/** Numbers at and past the limits methods use (UIDs are 32-bit, offsets 2^30/2^40, ports 16-bit). */
export const EDGE_NUMBERS: readonly number[] = [
  0,
  -0,
  1,
  -1,
  0.5,
  -0.5,
  127,
  128,
  255,
  256,
  65535,
  65536,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 40,
  2 ** 40 + 1,
  2 ** 53 - 1,
  2 ** 53,
  -(2 ** 53),
  1e308,
  -1e308,
  Number.MIN_VALUE,
  Number.EPSILON,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
];

/** Keys that are properties of every object: a handler that indexes a plain object by them misbehaves. */
export const PROTOTYPE_KEYS: readonly string[] = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'hasOwnProperty',
  '__defineGetter__',
];

/** The codec's nesting limit: a body this deep still encodes, one deeper does not. */
export const MAX_DEPTH = DEFAULT_LIMITS.maxDepth;

/** A list nested `depth` levels (the innermost holds `leaf`); `map` nests maps instead. */
export function nested(depth: number, leaf: unknown, map = false): unknown {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = map ? { a: v } : [v];
  return v;
}

/** An own, enumerable property even for `__proto__` (plain assignment would set the prototype). */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

export function isPlainRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/**
 * A printable copy of a body: long strings cut (their length kept), bytes as
 * their length and first bytes, non-JSON numbers named, at most `depth`
 * levels and `items` entries per list or map.
 */
export function describeValue(v: unknown, depth = 6, items = 12): unknown {
  if (v === undefined) return '(absent)';
  if (v === null || typeof v === 'boolean') return v;
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return 'NaN';
    if (!Number.isFinite(v)) return v > 0 ? 'Infinity' : '-Infinity';
    if (Object.is(v, -0)) return '-0';
    return v;
  }
  if (typeof v === 'string') {
    return v.length <= 120 ? v : `${v.slice(0, 60)}…(${v.length} chars)`;
  }
  if (v instanceof Uint8Array) {
    return `(${v.length} bytes: ${Buffer.from(v.subarray(0, 16)).toString('hex')}${v.length > 16 ? '…' : ''})`;
  }
  if (depth === 0) return '(…)';
  if (Array.isArray(v)) {
    const out = v.slice(0, items).map((x) => describeValue(x, depth - 1, items));
    if (v.length > items) out.push(`…(${v.length} entries)`);
    return out;
  }
  if (typeof v === 'object') {
    const out: Record<string, unknown> = {};
    const keys = Object.keys(v);
    for (const k of keys.slice(0, items)) {
      setOwn(out, k, describeValue((v as Record<string, unknown>)[k], depth - 1, items));
    }
    if (keys.length > items) out['…'] = `${keys.length} keys`;
    return out;
  }
  return `(${typeof v})`;
}

/** describeValue as one line of JSON, cut at `max` characters. */
export function showValue(v: unknown, max = 600): string {
  const text = JSON.stringify(describeValue(v)) ?? String(v);
  return text.length <= max ? text : `${text.slice(0, max)}…`;
}
