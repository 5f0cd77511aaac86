/**
 * The SMS channel (issue 14: "admin alerted by SMS at takeover"): each alarm
 * record of at least `minSeverity` as one short SMS to every configured
 * number, over an SMPP link made with the wake-ups' `push.sms` settings
 * (server/transport/push/sms-sender.ts).
 *
 * The link is this node's own, bound at the first alarm SMS and unbound after
 * `idleMs` without one, not the transport's sent over the bus: any node may
 * be the one that writes an alarm (an edge raises admin_gone with every admin
 * down; node_gone of the last transport has no transport left to send it), so
 * going through a transport would lose exactly the alarms about transports.
 * The SMSC sees one more bind of the same system_id for a minute per alarm
 * burst.
 *
 * One SMS per record and number: at most 160 characters of the GSM 7-bit
 * alphabet's plain part (no escapes, so one message, never split), anything
 * else in the text replaced, cut with `..` past the length. An event's clear
 * (takeover_done is raised and cleared at once) is not sent. At most
 * `maxPerHour` records go per node and hour, whatever the number of
 * recipients; the rest are counted `suppressed`, and the next SMS that goes
 * says how many were not sent. A number the SMSC refuses (ESME_RINVDSTADR)
 * is logged and not tried again for that record; any other failure fails the
 * attempt, and the dispatcher's retry sends only to the numbers still
 * missing it.
 */
import type { Logger } from 'pino';
import type { DestinationPolicy } from '../../net/destination-policy.ts';
import type { SmsSender } from '../../transport/push/sms-sender.ts';
import { ALARM_SEVERITIES, type AlarmRecord, type AlarmSeverity } from '../alarm.ts';
import type { AlarmChannel } from './dispatcher.ts';

export interface AlarmSmsSettings {
  /** International numbers, `+` and digits. */
  to: string[];
  /** Records of this severity and above (default info: a takeover is info). */
  minSeverity?: AlarmSeverity;
  /** Records sent per hour (each to every number; default 10). */
  maxPerHour?: number;
  /** The link is unbound after this long without an alarm SMS (default 60 s). */
  idleMs?: number;
}

/** The SMSC and the bind, as `push.sms` gives them. */
export interface SmsLinkSettings {
  host: string;
  port: number;
  systemId: string;
  password: string;
  sourceAddress: string;
}

export const ALARM_SMS_MAX = 160;
export const DEFAULT_ALARM_SMS_PER_HOUR = 10;
const HOUR_MS = 3_600_000;
/** An alarm older than this is not worth delivering to a phone that was off. */
const VALIDITY_S = 12 * 3600;
/** Events: raised and cleared in one step; their clear tells nothing new. */
const EVENT_KINDS = new Set(['takeover_done']);

/** Characters of the GSM 03.38 default alphabet that take one septet and read the same everywhere. */
const NOT_PLAIN_GSM = /[^A-Za-z0-9 @$!"#%&'()*+,\-./:;<=>?_]/gu;

/** The text as plain GSM: accents dropped, whitespace and control bytes one space, the rest `?`. */
export function plainGsm(text: string): string {
  return text
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/[\s\p{Cc}]+/gu, ' ')
    .replace(NOT_PLAIN_GSM, '?')
    .trim();
}

/** One SMS: `mmgw CRITICAL node_gone t1 16:57Z: <message>`, with the count of records not sent before. */
export function alarmSmsText(r: AlarmRecord, notSent = 0): string {
  const state = r.state === 'raised' ? r.severity.toUpperCase() : 'CLEARED';
  const time = new Date(r.at).toISOString().slice(11, 16);
  const before = notSent > 0 ? `(+${notSent} not sent) ` : '';
  const text = plainGsm(`${before}mmgw ${state} ${r.kind} ${r.subject} ${time}Z: ${r.message}`);
  return text.length <= ALARM_SMS_MAX ? text : `${text.slice(0, ALARM_SMS_MAX - 2)}..`;
}

export interface SmsChannelOptions {
  logger?: Pick<Logger, 'info' | 'warn'>;
  now?: () => number;
  /** Makes the link (tests); default an SmsSender of `link`. */
  openLink?: () => Promise<Pick<SmsSender, 'submit' | 'close'>>;
}

export function smsChannel(
  settings: AlarmSmsSettings,
  link: SmsLinkSettings,
  policy: DestinationPolicy,
  opts: SmsChannelOptions = {},
): AlarmChannel {
  const now = opts.now ?? Date.now;
  const min = ALARM_SEVERITIES.indexOf(settings.minSeverity ?? 'info');
  const perHour = settings.maxPerHour ?? DEFAULT_ALARM_SMS_PER_HOUR;
  const idleMs = settings.idleMs ?? 60_000;
  const openLink =
    opts.openLink ??
    (async () => {
      // Loaded on first use: a node that never sends an alarm SMS never loads smpp.
      const { SmsSender } = await import('../../transport/push/sms-sender.ts');
      return new SmsSender({ ...link, policy, ...(opts.logger ? { logger: opts.logger } : {}) });
    });
  let sender: Promise<Pick<SmsSender, 'submit' | 'close'>> | undefined;
  let idle: NodeJS.Timeout | undefined;
  const sentAt: number[] = [];
  let notSent = 0;
  /** Per record admitted to the hour's budget: its text, and the numbers that have it. */
  const admitted = new WeakMap<AlarmRecord, { text: string; done: Set<string> }>();

  const unbindLater = () => {
    clearTimeout(idle);
    idle = setTimeout(() => {
      const s = sender;
      sender = undefined;
      void s?.then((l) => l.close()).catch(() => {});
    }, idleMs);
    idle.unref();
  };

  return {
    name: 'sms',
    wants: (r) =>
      ALARM_SEVERITIES.indexOf(r.severity) >= min && !(r.state === 'cleared' && EVENT_KINDS.has(r.kind)),
    async send(record) {
      let entry = admitted.get(record);
      if (!entry) {
        const t = now();
        while (sentAt.length > 0 && sentAt[0]! <= t - HOUR_MS) sentAt.shift();
        if (sentAt.length >= perHour) {
          notSent++;
          return 'suppressed';
        }
        sentAt.push(t);
        entry = { text: alarmSmsText(record, notSent), done: new Set() };
        notSent = 0;
        admitted.set(record, entry);
      }
      if (!sender) {
        const opening = openLink();
        sender = opening;
        opening.catch(() => {
          if (sender === opening) sender = undefined;
        });
      }
      // Not unbound under a send: the idle time starts when this record is through.
      clearTimeout(idle);
      const failed: string[] = [];
      try {
        const s = await sender;
        for (const to of settings.to) {
          if (entry.done.has(to)) continue;
          const sent = await s.submit(to, entry.text, VALIDITY_S);
          if (sent.result === 'failed') {
            failed.push(`${to}: ${sent.why}`);
            continue;
          }
          entry.done.add(to);
          if (sent.result === 'gone') opts.logger?.warn({ to, why: sent.why }, 'alarm SMS: number refused');
        }
      } finally {
        unbindLater();
      }
      if (failed.length > 0) throw new Error(`alarm SMS not sent to ${failed.join('; ')}`);
    },
    close() {
      clearTimeout(idle);
      const s = sender;
      sender = undefined;
      void s?.then((l) => l.close()).catch(() => {});
    },
  };
}
