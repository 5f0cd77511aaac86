/**
 * Helpers of the admin API tests: a small client that logs in and calls
 * /api/v1 on a real gateway, and an SSE reader.
 */
import assert from 'node:assert/strict';
import type { EventuallyOptions } from '../../testing/index.ts';
import { nextImei } from '../harness/gateway.ts';

export const ADMIN = { name: 'root', password: 'correct horse battery' };
/** Bounds only against hangs; nothing asserts on time. */
export const WAIT_MS = 30_000;
/** eventually()'s options in the admin API tests (each probe is an API call: no faster than 5 a second). */
export const WAIT: EventuallyOptions = { timeoutMs: WAIT_MS, intervalMs: 200 };

export interface ApiAnswer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

export class ApiClient {
  token: string | undefined;
  constructor(readonly base: string) {}

  async call(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ApiAnswer> {
    const h: Record<string, string> = { ...headers };
    if (this.token) h.authorization = `Bearer ${this.token}`;
    let payload: string | undefined;
    if (typeof body === 'string') payload = body;
    else if (body !== undefined) {
      payload = JSON.stringify(body);
      h['content-type'] = 'application/json';
    }
    const res = await fetch(`${this.base}/api/v1${path}`, { method, headers: h, body: payload });
    const text = await res.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  }

  async login(name: string, password: string): Promise<ApiAnswer> {
    const r = await this.call('POST', '/auth/login', { name, password });
    if (r.status === 200) this.token = r.json.token;
    return r;
  }

  static async as(base: string, name: string, password: string): Promise<ApiClient> {
    const c = new ApiClient(base);
    const r = await c.login(name, password);
    assert.equal(r.status, 200, `login as ${name}: ${r.text}`);
    return c;
  }
}

/** Asserts an error answer: status, code and (when given) field. */
export function assertError(r: ApiAnswer, status: number, code: string, field?: string): void {
  assert.equal(r.status, status, `expected ${status} ${code}, got ${r.status}: ${r.text}`);
  assert.equal(r.json?.error?.code, code, r.text);
  assert.equal(typeof r.json.error.message, 'string');
  if (field !== undefined) assert.equal(r.json.error.field, field, r.text);
}

/** Reads Server-Sent Events from a URL until `until` says stop (or the bound passes). */
export async function readEvents(
  url: string,
  until: (events: Array<{ event: string; data: string }>) => boolean,
  onOpen?: () => Promise<void> | void,
): Promise<Array<{ event: string; data: string }>> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), WAIT_MS);
  const events: Array<{ event: string; data: string }> = [];
  try {
    const res = await fetch(url, { signal: ac.signal });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let opened = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      if (!opened) {
        opened = true;
        await onOpen?.();
      }
      let i = buffer.indexOf('\n\n');
      while (i >= 0) {
        const block = buffer.slice(0, i);
        buffer = buffer.slice(i + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) event = line.slice(7);
          else if (line.startsWith('data: ')) data.push(line.slice(6));
        }
        if (data.length > 0) events.push({ event, data: data.join('\n') });
        i = buffer.indexOf('\n\n');
      }
      if (until(events)) break;
    }
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return events;
}

/** Adds a device of `operator` with service profile `profile` through the API; its IMEI and secret. */
export async function addProfiledDevice(api: ApiClient, operator: string, profile: string) {
  const r = await api.call('POST', '/devices', { imei: nextImei(), operator, serviceProfile: profile });
  assert.equal(r.status, 201, r.text);
  return { imei: r.json.device.imei as string, secret: r.json.secret as string };
}
