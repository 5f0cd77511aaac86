import assert from 'node:assert/strict';
import { createECDH, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import webpush from 'web-push';
import { DestinationPolicy } from '../../net/destination-policy.ts';
import { mailWake } from '../../../testing/wake-messages.ts';
import { type Attempt, retryAfterMs, sendWithRetries } from './channel.ts';
import { WebPushSender } from './web-push-sender.ts';

test('Retry-After: delta-seconds or an HTTP date, in ms; absent or unreadable is undefined', () => {
  const now = Date.parse('Mon, 07 Dec 2026 12:00:00 GMT');
  assert.equal(retryAfterMs('120', now), 120_000);
  assert.equal(retryAfterMs(' 0 ', now), 0);
  assert.equal(retryAfterMs('Mon, 07 Dec 2026 12:00:30 GMT', now), 30_000);
  assert.equal(retryAfterMs('Mon, 07 Dec 2026 11:00:00 GMT', now), 0, 'a date in the past: at once');
  assert.equal(retryAfterMs(undefined, now), undefined);
  assert.equal(retryAfterMs('soon', now), undefined);
  assert.equal(retryAfterMs('-5', now), undefined);
});

const MESSAGE = mailWake(1);

/** A sender answering from a script (a throw stands for a network failure), and the waits it was given. */
function scripted(answers: (Attempt | Error)[]) {
  const waits: number[] = [];
  let tries = 0;
  const sender = {
    async attempt(): Promise<Attempt> {
      const next = answers[tries++];
      if (next === undefined) throw new Error('no more answers');
      if (next instanceof Error) throw next;
      return next;
    },
  };
  const opts = { sleep: async (ms: number) => void waits.push(ms), now: () => 0, maxRetryWaitMs: 30_000 };
  return { sender, opts, waits, tries: () => tries };
}

test('sendWithRetries: retryable failures wait for Retry-After, else double; sent or gone end it', async () => {
  const busy = (retryAfter?: string): Attempt => ({
    result: 'failed',
    why: 'HTTP 429',
    retry: true,
    retryAfter,
  });
  const a = scripted([busy('2'), new Error('reset'), { result: 'sent' }]);
  assert.deepEqual(await sendWithRetries(a.sender, {}, MESSAGE, a.opts), { result: 'sent' });
  assert.deepEqual(a.waits, [2000, 2000], 'Retry-After first, then the backoff of the second try');

  const b = scripted([busy('3600'), busy(), busy()]);
  assert.deepEqual(await sendWithRetries(b.sender, {}, MESSAGE, b.opts), {
    result: 'failed',
    why: 'HTTP 429',
  });
  assert.deepEqual(b.waits, [30_000, 2000], 'bounded by maxRetryWaitMs; no wait after the last try');

  const gone: Attempt = { result: 'gone', code: 'http_410', why: 'gone' };
  const c = scripted([busy(), gone]);
  assert.deepEqual(await sendWithRetries(c.sender, {}, MESSAGE, c.opts), gone);

  const d = scripted([{ result: 'failed', why: 'HTTP 400', retry: false }, { result: 'sent' }]);
  assert.deepEqual(await sendWithRetries(d.sender, {}, MESSAGE, d.opts), {
    result: 'failed',
    why: 'HTTP 400',
  });
  assert.equal(d.tries(), 1, 'a final failure is not tried again');

  const refused = Object.assign(new Error('refused'), { code: 'policy.destination_not_allowed' });
  const e = scripted([refused, { result: 'sent' }]);
  assert.deepEqual(await sendWithRetries(e.sender, {}, MESSAGE, e.opts), { result: 'failed', why: 'policy' });
  assert.equal(e.tries(), 1);
});

test('the signed VAPID header is reused per push service origin until its hour is up', async () => {
  const authorizations: string[] = [];
  const server = createServer((req, res) => {
    authorizations.push(String(req.headers.authorization));
    req.resume();
    req.on('end', () => res.writeHead(201).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let now = Date.parse('2026-12-07T12:00:00Z');
  const sender = new WebPushSender({
    policy: new DestinationPolicy({ allow: ['127.0.0.1'] }),
    vapid: { subject: 'mailto:ops@example.test', ...webpush.generateVAPIDKeys() },
    now: () => now,
  });
  const ua = createECDH('prime256v1');
  ua.generateKeys();
  const reg = (path: string) => ({
    kind: 'webpush' as const,
    endpoint: `http://127.0.0.1:${port}/push/${path}`,
    p256dh: ua.getPublicKey().toString('base64url'),
    auth: randomBytes(16).toString('base64url'),
    at: 0,
  });
  try {
    assert.deepEqual(await sender.attempt(reg('a'), MESSAGE), { result: 'sent' });
    assert.deepEqual(await sender.attempt(reg('b'), MESSAGE), { result: 'sent' });
    now += 61 * 60_000;
    assert.deepEqual(await sender.attempt(reg('a'), MESSAGE), { result: 'sent' });
    assert.match(authorizations[0]!, /^vapid t=[\w-]+\.[\w-]+\.[\w-]+, k=[\w-]+$/);
    assert.equal(authorizations[1], authorizations[0], 'same origin within the hour: the same JWT');
    assert.notEqual(authorizations[2], authorizations[0], 'signed again after the hour');
  } finally {
    await sender.close();
    server.close();
  }
});
