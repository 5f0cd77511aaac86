import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { DeviceLogRecord } from '../server/records/types.ts';
import { DAY_MS, HOUR_MS, RecordsStore } from './records-store.ts';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-records-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const T0 = Date.UTC(2026, 0, 10, 12, 0, 0);
const log = (imei: string, at: number, kind: DeviceLogRecord['kind'] = 'sync'): DeviceLogRecord => ({
  at,
  imei,
  kind,
  node: 'n1',
  service: 'session',
});

test('device logs: time order, kind and time filters, pages in both directions; kept across a reopen', async (t) => {
  const dataDir = tempDir(t);
  let store = await RecordsStore.open({ dataDir, now: () => T0 });
  await store.write({
    logs: [
      log('1', T0 - 3000, 'connect'),
      log('1', T0 - 2000),
      log('2', T0 - 1500),
      log('1', T0 - 1000, 'disconnect'),
    ],
    usage: [],
  });
  await store.close();
  store = await RecordsStore.open({ dataDir, now: () => T0 });
  t.after(() => store.close());
  const all = store.queryLogs('1', { limit: 10, order: 'asc' });
  assert.deepEqual(
    all.items.map((r) => r.kind),
    ['connect', 'sync', 'disconnect'],
  );
  assert.deepEqual(
    store
      .queryLogs('1', { limit: 10, order: 'desc', kinds: ['connect', 'disconnect'] })
      .items.map((r) => r.kind),
    ['disconnect', 'connect'],
  );
  assert.equal(
    store.queryLogs('1', { limit: 10, order: 'asc', from: T0 - 2500, to: T0 - 1500 }).items.length,
    1,
  );
  const p1 = store.queryLogs('1', { limit: 2, order: 'desc' });
  assert.equal(p1.items.length, 2);
  const p2 = store.queryLogs('1', { limit: 2, order: 'desc', cursor: p1.next });
  assert.deepEqual(
    p2.items.map((r) => r.kind),
    ['connect'],
  );
  assert.equal(p2.next, undefined);
});

test('retention: one device cannot take more than its cap, and the others keep theirs', async (t) => {
  const store = await RecordsStore.open({ dataDir: tempDir(t), maxPerDevice: 100, now: () => T0 });
  t.after(() => store.close());
  await store.write({ logs: [log('quiet', T0 - 10)], usage: [] });
  for (let b = 0; b < 5; b++) {
    await store.write({
      logs: Array.from({ length: 100 }, (_, i) => log('busy', T0 - 100_000 + b * 100 + i)),
      usage: [],
    });
  }
  const busy = store.queryLogs('busy', { limit: 1000, order: 'asc' }).items;
  assert.ok(busy.length <= 100 && busy.length >= 90, `busy keeps ${busy.length}`);
  assert.equal(busy.at(-1)?.at, T0 - 100_000 + 499, 'the newest are kept');
  assert.equal(store.queryLogs('quiet', { limit: 10, order: 'asc' }).items.length, 1);
});

test("records caused by outsiders: their own quota per device, never pushing out the device's own", async (t) => {
  const dataDir = tempDir(t);
  const known = new Set(['victim', 'quiet']);
  const options = {
    dataDir,
    maxPerDevice: 100,
    maxOutsiderPerDevice: 20,
    now: () => T0,
    operatorOf: (imei: string) => (known.has(imei) ? 'op' : undefined),
  };
  let store = await RecordsStore.open(options);
  await store.write({
    logs: [log('victim', T0 - 100_000, 'connect'), log('victim', T0 - 99_000, 'backend_error')],
    usage: [],
  });
  for (let b = 0; b < 10; b++) {
    await store.write({
      logs: Array.from({ length: 100 }, (_, i) => log('victim', T0 - 90_000 + b * 100 + i, 'auth_failure')),
      usage: [],
    });
  }
  const kinds = (imei: string) =>
    store.queryLogs(imei, { limit: 1000, order: 'asc' }).items.map((r) => r.kind);
  const check = () => {
    const got = kinds('victim');
    assert.deepEqual(got.slice(0, 2), ['connect', 'backend_error'], "the device's own records stay");
    const outsiders = got.filter((k) => k === 'auth_failure').length;
    assert.ok(outsiders >= 18 && outsiders <= 20, `outsiders' records kept: ${outsiders}`);
  };
  check();
  // The counts survive a reopen: the quota still holds.
  await store.close();
  store = await RecordsStore.open(options);
  t.after(() => store.close());
  await store.write({ logs: [log('victim', T0 - 1, 'auth_failure')], usage: [] });
  check();
  // The device's own records are trimmed among themselves, outsiders' records untouched.
  await store.write({
    logs: Array.from({ length: 200 }, (_, i) => log('victim', T0 + i, 'sync')),
    usage: [],
  });
  const after = kinds('victim');
  assert.ok(after.filter((k) => k === 'sync').length <= 100);
  assert.ok(after.filter((k) => k === 'auth_failure').length >= 18);
});

test('outsiders naming IMEIs that are not provisioned go to the bounded security log, not a device log', async (t) => {
  let now = T0;
  const store = await RecordsStore.open({
    dataDir: tempDir(t),
    securityMaxRecords: 50,
    securityMaxAgeDays: 1,
    now: () => now,
    operatorOf: (imei) => (imei === 'known' ? 'op' : undefined),
  });
  t.after(() => store.close());
  await store.write({
    logs: [
      ...Array.from({ length: 200 }, (_, i) => log(`ghost-${i}`, T0 - 1000 + i, 'auth_failure')),
      log('known', T0, 'auth_failure'),
      log('ghost-0', T0, 'sync'),
    ],
    usage: [],
  });
  assert.equal(store.queryLogs('ghost-1', { limit: 10, order: 'asc' }).items.length, 0);
  assert.deepEqual(
    store.queryLogs('ghost-0', { limit: 10, order: 'asc' }).items.map((r) => r.kind),
    ['sync'],
    'records of other kinds stay where they were',
  );
  assert.equal(store.queryLogs('known', { limit: 10, order: 'asc' }).items.length, 1);
  const s = store.stats();
  assert.ok(s.securityRecords <= 50 && s.securityRecords >= 45, `security records ${s.securityRecords}`);
  const page = store.querySecurity({ limit: 10 });
  assert.equal(page.items[0]?.imei, 'ghost-199', 'newest first; the oldest went');
  const next = store.querySecurity({ limit: 10, cursor: page.next });
  assert.equal(next.items[0]?.imei, 'ghost-189');
  now = T0 + 2 * DAY_MS;
  await store.sweep();
  assert.equal(store.stats().securityRecords, 0);
});

test('retention: total bytes stay under maxBytes (oldest go first) and old records age out', async (t) => {
  let now = T0;
  const store = await RecordsStore.open({
    dataDir: tempDir(t),
    maxBytes: 64 * 1024,
    maxAgeDays: 2,
    now: () => now,
  });
  t.after(() => store.close());
  for (let b = 0; b < 20; b++) {
    await store.write({
      logs: Array.from({ length: 50 }, (_, i) => log(String((b * 50 + i) % 7), T0 - 10_000 + b * 50 + i)),
      usage: [],
    });
  }
  const s = store.stats();
  assert.ok(s.logBytes <= 64 * 1024, `bytes ${s.logBytes}`);
  assert.ok(s.logRecords > 100 && s.logRecords < 1000);
  const newest = store.queryLogs(String(999 % 7), { limit: 1, order: 'desc' }).items[0];
  assert.ok(newest);
  assert.equal(newest.at, T0 - 10_000 + 999);
  now = T0 + 3 * DAY_MS;
  await store.sweep();
  assert.equal(store.stats().logRecords, 0);
});

test('usage: hour and day buckets, zero-filled, filters and groups; counters add up', async (t) => {
  const store = await RecordsStore.open({ dataDir: tempDir(t), now: () => T0 });
  t.after(() => store.close());
  const day0 = Date.UTC(2026, 0, 10);
  await store.write({
    logs: [],
    usage: [
      { at: day0 + 1 * HOUR_MS + 5, imei: '1', operator: 'a', service: 'session', logins: 1, bytesIn: 10 },
      { at: day0 + 1 * HOUR_MS + 9, imei: '2', operator: 'a', service: 'session', logins: 2 },
      { at: day0 + 3 * HOUR_MS, imei: '1', operator: 'b', service: 'mail', messagesIn: 4, bytesOut: 7 },
      { at: day0 + DAY_MS + 2 * HOUR_MS, imei: '3', operator: 'a', service: 'im', messagesOut: 1 },
    ],
  });
  await store.write({
    logs: [],
    usage: [{ at: day0 + HOUR_MS, imei: '1', operator: 'a', service: 'session', logins: 1 }],
  });
  const hourly = store.usageReport({
    from: day0,
    to: day0 + 6 * HOUR_MS,
    granularity: 'hour',
    groupBy: 'none',
  });
  assert.equal(hourly.rows.length, 6);
  assert.deepEqual(
    hourly.rows.map((r) => r.logins),
    [0, 4, 0, 0, 0, 0],
  );
  assert.equal(hourly.rows[3]!.messagesIn, 4);
  assert.equal(hourly.totals.bytesIn, 10);
  const daily = store.usageReport({
    from: day0,
    to: day0 + 2 * DAY_MS,
    granularity: 'day',
    groupBy: 'service',
  });
  assert.deepEqual(
    daily.rows.map((r) => [r.bucket, r.service, r.logins, r.messagesIn, r.messagesOut]),
    [
      [day0, 'im', 0, 0, 0],
      [day0, 'mail', 0, 4, 0],
      [day0, 'session', 4, 0, 0],
      [day0 + DAY_MS, 'im', 0, 0, 1],
      [day0 + DAY_MS, 'mail', 0, 0, 0],
      [day0 + DAY_MS, 'session', 0, 0, 0],
    ],
  );
  const opB = store.usageReport({
    from: day0,
    to: day0 + 2 * DAY_MS,
    granularity: 'day',
    groupBy: 'none',
    operator: 'b',
  });
  assert.deepEqual(opB.totals, {
    logins: 0,
    logouts: 0,
    messagesIn: 4,
    messagesOut: 0,
    bytesIn: 0,
    bytesOut: 7,
  });
  const mail = store.usageReport({
    from: day0,
    to: day0 + 2 * DAY_MS,
    granularity: 'day',
    groupBy: 'none',
    service: 'mail',
  });
  assert.equal(mail.totals.messagesIn, 4);
  assert.equal(store.deviceUsage('1', day0, day0 + DAY_MS).logins, 2);
});

test("usage without an operator (mail, IM from transport nodes) counts for the device's operator", async (t) => {
  const operators: Record<string, string> = { '1': 'a', '2': 'b' };
  const store = await RecordsStore.open({
    dataDir: tempDir(t),
    now: () => T0,
    operatorOf: (imei) => operators[imei],
  });
  t.after(() => store.close());
  const day0 = Date.UTC(2026, 0, 10);
  await store.write({
    logs: [],
    usage: [
      { at: day0, imei: '1', service: 'mail', messagesIn: 2 },
      { at: day0, imei: '2', service: 'im', messagesOut: 3 },
      { at: day0, imei: '9', service: 'im', messagesOut: 5 },
      { at: day0, imei: '1', operator: 'b', service: 'session', logins: 1 },
    ],
  });
  const by = (operator: string) =>
    store.usageReport({ from: day0, to: day0 + DAY_MS, granularity: 'day', groupBy: 'none', operator })
      .totals;
  assert.equal(by('a').messagesIn, 2);
  assert.equal(by('b').messagesOut, 3);
  assert.equal(by('b').logins, 1, 'an operator given with the delta is kept');
  const all = store.usageReport({ from: day0, to: day0 + DAY_MS, granularity: 'day', groupBy: 'none' });
  assert.equal(all.totals.messagesOut, 8, 'an unknown device still counts in the totals');
});

test('audit: newest first, filters, pages', async (t) => {
  let now = T0;
  const store = await RecordsStore.open({ dataDir: tempDir(t), now: () => now });
  t.after(() => store.close());
  for (let i = 0; i < 5; i++) {
    now = T0 + i;
    await store.addAudit({
      actor: i % 2 ? 'a' : 'b',
      role: 'admin',
      action: `device.${i}`,
      target: `device:${i}`,
    });
  }
  const all = store.queryAudit({ limit: 10 });
  assert.deepEqual(
    all.items.map((e) => e.action),
    ['device.4', 'device.3', 'device.2', 'device.1', 'device.0'],
  );
  assert.equal(store.queryAudit({ limit: 10, actor: 'a' }).items.length, 2);
  const p1 = store.queryAudit({ limit: 2 });
  const p2 = store.queryAudit({ limit: 2, cursor: p1.next });
  assert.deepEqual(
    p2.items.map((e) => e.action),
    ['device.2', 'device.1'],
  );
});
