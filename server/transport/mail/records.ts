/**
 * Mail usage records → per-device log records and hourly usage counters
 * (server/records). Every login and operation of the mail service already
 * produces a MailUsageRecord (bytes to and from the mail servers); this turns
 * each into what the admin role shows. Bytes are backend bytes (IMAP/SMTP),
 * which is what an operator bills and watches per device.
 */
import type { Recorder } from '../../records/types.ts';
import type { MailUsageRecord } from './imap-session.ts';

/** How each operation shows in the device log; the rest only count bytes. */
const KIND_OF_OP: Record<string, 'backend_login' | 'sync' | 'message_in' | 'message_out'> = {
  login: 'backend_login',
  sync: 'sync',
  body: 'message_in',
  send: 'message_out',
};

export function recordMailUsage(recorder: Recorder, r: MailUsageRecord): void {
  const imei = r.deviceId;
  const bytes = { bytesIn: r.bytesIn, bytesOut: r.bytesOut };
  const detail: Record<string, string | number | boolean> = { op: r.op };
  if (r.account) detail.account = r.account;
  if (r.preset) detail.preset = r.preset;
  if (!r.ok) {
    recorder.log({
      imei,
      kind: 'backend_error',
      service: 'mail',
      message: `${r.op} failed`,
      ...(r.code ? { code: r.code } : {}),
      ...bytes,
      detail,
    });
  } else {
    const kind = KIND_OF_OP[r.op];
    if (kind) recorder.log({ imei, kind, service: 'mail', message: r.op, ...bytes, detail });
  }
  if (r.bytesIn === 0 && r.bytesOut === 0 && !(r.ok && (r.op === 'login' || r.op === 'send'))) return;
  recorder.usage({
    imei,
    service: 'mail',
    ...bytes,
    ...(r.ok && r.op === 'login' ? { logins: 1 } : {}),
    ...(r.ok && r.op === 'body' ? { messagesIn: 1 } : {}),
    ...(r.ok && r.op === 'send' ? { messagesOut: 1 } : {}),
  });
}
