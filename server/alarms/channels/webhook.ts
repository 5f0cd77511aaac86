/**
 * The webhook channel: each alarm record as an HTTP POST of JSON
 *   {"version": 1, "alarm": AlarmRecord}
 * signed with HMAC-SHA256 over `<timestamp>.<body>` with the configured
 * secret: headers `X-Mmgw-Timestamp` (epoch ms) and `X-Mmgw-Signature:
 * sha256=<hex>`; the receiver recomputes it and refuses old timestamps
 * (replays). The destination goes through the node's outbound policy like
 * every connection, and the connection goes to the address it checked.
 * Any 2xx is delivered; anything else is retried by the dispatcher.
 */
import { createHmac } from 'node:crypto';
import type { AlarmRecord } from '../alarm.ts';
import type { DestinationPolicy } from '../../net/destination-policy.ts';
import { pinnedRequest } from '../../net/pinned-request.ts';
import type { AlarmChannel } from './dispatcher.ts';

export interface WebhookSettings {
  url: string;
  /** HMAC key of the signature. */
  secret: string;
  /** The whole request, connect to response (default 10 s). */
  timeoutMs?: number;
}

export const WEBHOOK_SIGNATURE_HEADER = 'x-mmgw-signature';
export const WEBHOOK_TIMESTAMP_HEADER = 'x-mmgw-timestamp';

export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export function webhookChannel(settings: WebhookSettings, policy: DestinationPolicy): AlarmChannel {
  const url = new URL(settings.url);
  const https = url.protocol === 'https:';
  const port = url.port === '' ? (https ? 443 : 80) : Number(url.port);
  const timeoutMs = settings.timeoutMs ?? 10_000;
  return {
    name: 'webhook',
    async send(record: AlarmRecord): Promise<void> {
      const target = await policy.check('webhook', url.hostname, port);
      const body = JSON.stringify({ version: 1, alarm: record });
      const timestamp = String(Date.now());
      const { status } = await pinnedRequest(url, target, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          'user-agent': 'mmgw-alarms',
          [WEBHOOK_TIMESTAMP_HEADER]: timestamp,
          [WEBHOOK_SIGNATURE_HEADER]: webhookSignature(settings.secret, timestamp, body),
        },
        body,
        timeoutMs,
        timedOut: 'webhook timed out',
      });
      // Only the status matters; the receiver's body is neither read nor logged.
      if (status < 200 || status >= 300) throw new Error(`webhook answered HTTP ${status}`);
    },
  };
}
