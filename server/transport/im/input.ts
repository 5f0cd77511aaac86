/** Validation of untrusted IM request bodies: every failure is request.bad_input naming the field. */
import { jid as parseJid } from '@xmpp/client';
import { GatewayError } from '../../../device-protocol/errors.ts';

export type Body = Record<string, unknown>;

export function bad(field: string, msg: string): GatewayError {
  return new GatewayError('request.bad_input', `${field}: ${msg}`, { field });
}

export function asObject(body: unknown): Body {
  if (typeof body !== 'object' || body === null || Array.isArray(body) || body instanceof Uint8Array) {
    throw bad('body', 'must be an object');
  }
  return body as Body;
}

export function optStr(body: Body, field: string, max: number): string | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw bad(field, 'must be a string');
  if (v.length > max) throw bad(field, `is longer than ${max} characters`);
  return v;
}

export function reqStr(body: Body, field: string, max: number): string {
  const v = optStr(body, field, max);
  if (v === undefined) throw bad(field, 'is required');
  if (v === '') throw bad(field, 'must not be empty');
  return v;
}

export function optInt(body: Body, field: string, min: number, max: number): number | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw bad(field, `must be an integer from ${min} to ${max}`);
  }
  return v;
}

export function optBool(body: Body, field: string): boolean | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw bad(field, 'must be true or false');
  return v;
}

/** A bare JID (user@domain), normalised by @xmpp/jid (domain lower-cased). */
export function bareJidField(body: Body, field: string): string {
  const raw = reqStr(body, field, 3071);
  let parsed: ReturnType<typeof parseJid>;
  try {
    parsed = parseJid(raw);
  } catch {
    throw bad(field, 'is not a valid JID');
  }
  // RFC 7622: each part is at most 1023 bytes.
  if (!parsed.local || !parsed.domain || /\s/.test(raw))
    throw bad(field, 'must be a bare JID like user@domain');
  if (Buffer.byteLength(parsed.local) > 1023 || Buffer.byteLength(parsed.domain) > 1023) {
    throw bad(field, 'has a part longer than 1023 bytes');
  }
  return parsed.bare().toString();
}

export function accountField(body: Body): string {
  const account = reqStr(body, 'account', 64);
  if (!/^x[0-9a-f]{16}$/.test(account)) throw bad('account', 'is not a chat account id');
  return account;
}
