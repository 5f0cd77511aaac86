/** Validation of untrusted request bodies: every failure is request.bad_input naming the field. */
import { GatewayError } from '../../../device-protocol/errors.ts';

export type Body = Record<string, unknown>;

export function bad(field: string, msg: string): GatewayError {
  return new GatewayError('request.bad_input', `${field}: ${msg}`, { field });
}

export function asObject(body: unknown, field = 'body'): Body {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || body instanceof Uint8Array) {
    throw bad(field, 'must be an object');
  }
  return body as Body;
}

export function str(
  body: Body,
  field: string,
  opts: { max?: number; optional?: boolean; prefix?: string } = {},
) {
  const v = body[field];
  const name = (opts.prefix ?? '') + field;
  if (v === undefined || v === null) {
    if (opts.optional) return undefined;
    throw bad(name, 'is required');
  }
  if (typeof v !== 'string') throw bad(name, 'must be a string');
  if (!opts.optional && v === '') throw bad(name, 'must not be empty');
  if (v.length > (opts.max ?? 1000)) throw bad(name, `is longer than ${opts.max ?? 1000} characters`);
  return v;
}

export function reqStr(body: Body, field: string, opts: { max?: number; prefix?: string } = {}): string {
  return str(body, field, opts) as string;
}

export function int(
  body: Body,
  field: string,
  opts: { min?: number; max?: number; optional?: boolean; default?: number } = {},
): number | undefined {
  const v = body[field];
  if (v === undefined || v === null) {
    if (opts.default !== undefined) return opts.default;
    if (opts.optional) return undefined;
    throw bad(field, 'is required');
  }
  if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(field, 'must be an integer');
  if (opts.min !== undefined && v < opts.min) throw bad(field, `must be at least ${opts.min}`);
  if (opts.max !== undefined && v > opts.max) throw bad(field, `must be at most ${opts.max}`);
  return v;
}

export function reqInt(
  body: Body,
  field: string,
  opts: { min?: number; max?: number; default?: number } = {},
): number {
  return int(body, field, opts) as number;
}

export function uidList(body: Body, field: string, max = 1000): number[] {
  const v = body[field];
  const list = typeof v === 'number' ? [v] : v;
  if (!Array.isArray(list) || list.length === 0)
    throw bad(field, 'must be a UID or a non-empty list of UIDs');
  if (list.length > max) throw bad(field, `must hold at most ${max} UIDs`);
  for (const u of list) {
    if (typeof u !== 'number' || !Number.isInteger(u) || u < 1 || u > 0xffffffff) {
      throw bad(field, 'UIDs are integers from 1 to 4294967295');
    }
  }
  return list as number[];
}

export function stringList(
  body: Body,
  field: string,
  opts: { max?: number; optional?: boolean } = {},
): string[] {
  const v = body[field];
  if (v === undefined || v === null) {
    if (opts.optional) return [];
    throw bad(field, 'is required');
  }
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list)) throw bad(field, 'must be a list of strings');
  if (list.length > (opts.max ?? 100)) throw bad(field, `must hold at most ${opts.max ?? 100} entries`);
  for (const s of list) {
    if (typeof s !== 'string' || s === '' || s.length > 320)
      throw bad(field, 'entries must be non-empty strings');
  }
  return list as string[];
}

/** A folder path as IMAP knows it (the server decides whether it exists). */
export function folder(body: Body, field = 'folder'): string {
  const f = reqStr(body, field, { max: 500 });
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f]/.test(f)) throw bad(field, 'must not contain control characters');
  return f;
}
