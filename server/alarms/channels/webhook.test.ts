import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { alarmRecord } from '../../../testing/alarm-history-suite.ts';
import { DestinationPolicy } from '../../net/destination-policy.ts';
import {
  WEBHOOK_SIGNATURE_HEADER,
  WEBHOOK_TIMESTAMP_HEADER,
  webhookChannel,
  webhookSignature,
} from './webhook.ts';

async function receiver(statuses: number[]) {
  const requests: { headers: IncomingMessage['headers']; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      requests.push({ headers: req.headers, body });
      res.statusCode = statuses.shift() ?? 204;
      res.end('internal details the gateway must not keep');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hook?x=1`, requests, close: () => server.close() };
}

const SECRET = 'a-webhook-secret-of-enough-length';

test('POSTs the record as JSON, signed over timestamp and body', async () => {
  const rx = await receiver([]);
  try {
    const channel = webhookChannel(
      { url: rx.url, secret: SECRET },
      new DestinationPolicy({ allow: ['127.0.0.1'] }),
    );
    const record = alarmRecord({ kind: 'admin_gone', subject: 'cluster' });
    await channel.send(record);
    const [req] = rx.requests;
    assert.ok(req);
    assert.deepEqual(JSON.parse(req.body), { version: 1, alarm: record });
    assert.equal(req.headers['content-type'], 'application/json');
    const ts = String(req.headers[WEBHOOK_TIMESTAMP_HEADER]);
    assert.equal(req.headers[WEBHOOK_SIGNATURE_HEADER], webhookSignature(SECRET, ts, req.body));
    assert.notEqual(
      webhookSignature('another-secret-entirely', ts, req.body),
      req.headers[WEBHOOK_SIGNATURE_HEADER],
    );
  } finally {
    rx.close();
  }
});

test('a non-2xx answer fails the attempt (the dispatcher retries)', async () => {
  const rx = await receiver([500]);
  try {
    const channel = webhookChannel(
      { url: rx.url, secret: SECRET },
      new DestinationPolicy({ allow: ['127.0.0.1'] }),
    );
    await assert.rejects(channel.send(alarmRecord()), /HTTP 500/);
    await channel.send(alarmRecord());
    assert.equal(rx.requests.length, 2);
  } finally {
    rx.close();
  }
});

test('the outbound policy refuses loopback unless the operator allowed it: nothing is sent', async () => {
  const rx = await receiver([]);
  try {
    const channel = webhookChannel({ url: rx.url, secret: SECRET }, new DestinationPolicy());
    await assert.rejects(
      channel.send(alarmRecord()),
      (err: { code?: string }) => err.code === 'policy.destination_not_allowed',
    );
    assert.equal(rx.requests.length, 0);
  } finally {
    rx.close();
  }
});
