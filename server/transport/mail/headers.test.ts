import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FetchMessageObject } from 'imapflow';
import { encodeFrame } from '../../../device-protocol/codec.ts';
import { Kind } from '../../../device-protocol/messages.ts';
import { FIELD_CAPS } from './field-caps.ts';
import { fitPage, headerBytes, type MailHeader, PAGE_BUDGET_BYTES, toHeader } from './headers.ts';

const hostile = (uid: number): FetchMessageObject =>
  ({
    seq: uid,
    uid,
    size: 1,
    flags: new Set(Array.from({ length: 40 }, (_, i) => `${'k'.repeat(120)}${i}`)),
    envelope: {
      subject: '漢'.repeat(400_000),
      from: [{ name: 'N'.repeat(100_000), address: `${'a'.repeat(100_000)}@x` }],
    },
    bodyStructure: { type: 'text/plain', part: '1' },
  }) as unknown as FetchMessageObject;

test('toHeader cuts every field a sender controls to its documented size', () => {
  const h = toHeader(hostile(1));
  assert.ok(Buffer.byteLength(h.subject) <= FIELD_CAPS.subject);
  assert.ok(Buffer.byteLength(h.from.name) <= FIELD_CAPS.name);
  assert.ok(Buffer.byteLength(h.from.address) <= FIELD_CAPS.address);
  assert.equal(h.flags.length, FIELD_CAPS.flags);
});

test('a structure past the limits or marked unreadable lists no attachments', () => {
  const deep = { ...hostile(2), bodyStructure: undefined } as unknown as FetchMessageObject;
  assert.equal(toHeader(deep).attachments, 0);
  const wide = {
    ...hostile(3),
    bodyStructure: {
      type: 'multipart/mixed',
      childNodes: Array.from({ length: 2000 }, (_, i) => ({ type: 'application/pdf', part: String(i + 1) })),
    },
  } as unknown as FetchMessageObject;
  assert.equal(toHeader(wide).attachments, 0);
});

test('a page of 500 headers at their caps is cut to the budget and always encodes', () => {
  const items: MailHeader[] = Array.from({ length: 500 }, (_, i) => ({
    ...toHeader(hostile(i + 1)),
    preview: '😀'.repeat(140),
  }));
  assert.ok(items.reduce((n, h) => n + headerBytes(h), 0) > 1024 * 1024, 'uncut, it would not fit a frame');
  const newest = fitPage(items, 'newest');
  assert.ok(newest.length < items.length && newest.length > 0);
  assert.ok(newest.reduce((n, h) => n + headerBytes(h), 0) <= PAGE_BUDGET_BYTES);
  assert.equal(Math.max(...newest.map((h) => h.uid)), 500, 'the newest kept');
  const oldest = fitPage(items, 'oldest');
  assert.equal(Math.min(...oldest.map((h) => h.uid)), 1, 'the oldest kept');
  const frame = encodeFrame({ kind: Kind.Response, seq: 1, id: 'r1', body: { items: newest } });
  assert.ok(frame.length < 1024 * 1024);
  // Encoded, a header is no bigger than headerBytes says.
  const one = encodeFrame({ kind: Kind.Response, seq: 1, id: 'r1', body: { items: [newest[0]!] } });
  assert.ok(one.length <= headerBytes(newest[0]!) + 64);
  assert.equal(fitPage(items.slice(0, 3), 'newest').length, 3, 'small pages untouched');
});
