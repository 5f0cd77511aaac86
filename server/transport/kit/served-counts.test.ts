import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countServed, servedCounter } from './served-counts.ts';

test('a device with mail and chat accounts counts once; accounts count per service', () => {
  const mail = new Map([
    ['d1', 2],
    ['d2', 1],
  ]);
  const im = new Map([
    ['d2', 3],
    ['d3', 1],
  ]);
  assert.deepEqual(countServed(mail, im), { devices: 3, mailAccounts: 3, imAccounts: 4 });
  assert.deepEqual(countServed(undefined, undefined), { devices: 0, mailAccounts: 0, imAccounts: 0 });
});

test('the stores are read again only once the last count is older than maxAgeMs', () => {
  let t = 0;
  let reads = 0;
  const mail = new Map([['d1', 1]]);
  const counter = servedCounter(
    () => {
      reads++;
      return mail;
    },
    () => undefined,
    5000,
    () => t,
  );
  assert.equal(counter().mailAccounts, 1);
  mail.set('d2', 4);
  t = 4999;
  assert.equal(counter().mailAccounts, 1, 'still the last count');
  t = 5000;
  assert.deepEqual(counter(), { devices: 2, mailAccounts: 5, imAccounts: 0 });
  assert.equal(reads, 2);
});
