/**
 * An HTTP receiver of alarm webhooks on a free loopback port: checks each
 * POST's signature against the secret (refusing a bad one with 401, as a real
 * receiver would) and keeps the alarms it accepted, in order. It can be told
 * to fail the next requests (retries).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AlarmRecord } from '../server/alarms/alarm.ts';
import { webhookSignature } from '../server/alarms/channels/webhook.ts';

export interface WebhookReceiver {
  url: string;
  /** Alarms accepted (signature good), in arrival order. */
  alarms: AlarmRecord[];
  /** Requests refused for their signature. */
  badSignatures: number;
  /** The next `n` requests are answered 503. */
  failNext(n: number): void;
  close(): Promise<void>;
}

export async function startWebhookReceiver(secret: string): Promise<WebhookReceiver> {
  let failing = 0;
  const rx: WebhookReceiver = {
    url: '',
    alarms: [],
    badSignatures: 0,
    failNext(n) {
      failing = n;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const ts = String(req.headers['x-mmgw-timestamp'] ?? '');
      if (req.headers['x-mmgw-signature'] !== webhookSignature(secret, ts, body)) {
        rx.badSignatures++;
        res.statusCode = 401;
        res.end();
        return;
      }
      if (failing > 0) {
        failing--;
        res.statusCode = 503;
        res.end();
        return;
      }
      rx.alarms.push((JSON.parse(body) as { alarm: AlarmRecord }).alarm);
      res.statusCode = 204;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  rx.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/alarms`;
  return rx;
}
