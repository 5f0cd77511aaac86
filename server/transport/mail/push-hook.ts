/**
 * The new-mail hook: a mail server tells the gateway over HTTP that a user's
 * INBOX got mail, and the account's INBOX watcher fetches it at once.
 *
 * Why: Dovecot's IMAP IDLE holds back EXISTS for about half a second after a
 * change (it batches notifications), which alone exceeds the push-latency
 * budget. Dovecot's push_notification plugin runs in the delivering process
 * as the mail is committed; its Lua driver with docs/dovecot/mmgw-push.lua
 * (or its OX driver, same JSON field names) calls this hook. IDLE keeps
 * running as the fallback for servers without the plugin or a hook that
 * fails; both end in the watcher's catch-up, whose UID mark makes every
 * `mail.new` go out once whichever comes first.
 *
 *   mail server ──POST /hooks/mail/new──▶ ops endpoint of any node
 *        ──bus publish MAIL_PUSH_SUBJECT──▶ every transport node ──▶ the watchers of that user
 *
 * Any node may take the request: the transport holding the user's devices
 * is found by the publish, not by the HTTP route.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { z } from 'zod';
import { GatewayError } from '../../../device-protocol/errors.ts';
import type { Bus, Subscription } from '../../bus/bus.ts';
import { type OpsHandler, sendJson } from '../../ops/http.ts';
import { boundedString, optionalInteger, parseInput, plainObject } from '../kit/method-input.ts';
import { MAX_UID } from './fields.ts';

/** Node → every transport (fire and forget): a MailPushNotice. */
export const MAIL_PUSH_SUBJECT = 'mmgw.mail.push';
export const MAIL_PUSH_PATH = '/hooks/mail/new';

/** What the hook says, normalised: someone's folder got mail up to `uid`. */
export interface MailPushNotice {
  /** The mail server's user name (Dovecot's %u): matched against the accounts' IMAP login and address. */
  user: string;
  folder: string;
  uid?: number;
  uidValidity?: number;
  /** Only accounts whose IMAP host is this (the hook URL's `?host=`), when several servers share user names. */
  host?: string;
}

const MAX_BODY_BYTES = 16 * 1024;

const bad = (field: string, why: string) =>
  new GatewayError('request.bad_input', `push hook: ${field} ${why}`, { field });

const noticeInput = plainObject
  // The OX driver names the folder `mailbox`; neither means INBOX (the only folder watched).
  .transform((o) => ({ ...o, folder: o.folder ?? o.mailbox ?? 'INBOX' }))
  .pipe(
    z.object({
      user: boundedString(320),
      folder: boundedString(1000),
      'imap-uid': optionalInteger(1, MAX_UID),
      'imap-uidvalidity': optionalInteger(1, MAX_UID),
    }),
  );

/** The `?host=` of the hook URL, when given. */
const hostInput = z.string().min(1).max(255).nullish();

/**
 * Accepts the body the Lua script sends and the one of Dovecot's OX driver:
 * `{"user", "folder"?, "imap-uid"?, "imap-uidvalidity"?, …}`; more fields are ignored.
 */
export function parseMailPushNotice(raw: unknown, host?: string | null): MailPushNotice {
  const n = parseInput(noticeInput, raw);
  const onHost = parseInput(hostInput, host, 'host');
  return {
    user: n.user,
    folder: n.folder,
    ...(n['imap-uid'] === undefined ? {} : { uid: n['imap-uid'] }),
    ...(n['imap-uidvalidity'] === undefined ? {} : { uidValidity: n['imap-uidvalidity'] }),
    ...(onHost ? { host: onHost } : {}),
  };
}

/** What a transport takes from the bus: its own parseMailPushNotice's output (a field of another type is dropped). */
const busNotice = z.object({
  user: z.string(),
  folder: z.string(),
  uid: z.number().optional().catch(undefined),
  uidValidity: z.number().optional().catch(undefined),
  host: z.string().optional().catch(undefined),
});

const digest = (s: string) => createHash('sha256').update(s).digest();

/** `Bearer <token>`, or Basic with the token as password (a hook URL with user:token@ in it, as the OX driver sends). */
export function hookAuthorized(header: string | undefined, token: string): boolean {
  if (!header) return false;
  const [scheme = '', value = ''] = header.trim().split(/\s+/, 2);
  let given: string | undefined;
  if (/^bearer$/i.test(scheme)) given = value;
  else if (/^basic$/i.test(scheme)) {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    given = colon < 0 ? undefined : decoded.slice(colon + 1);
  }
  return given !== undefined && timingSafeEqual(digest(given), digest(token));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw bad('body', `is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw bad('body', 'is not JSON');
  }
}

export interface MailPushHookOptions {
  bus: Bus;
  /** The shared secret the mail server sends (config mailPushToken). */
  token: string;
  logger?: Logger;
  metrics?: Registry;
}

/** The HTTP side, mounted on the ops endpoint: checks, normalises, publishes, answers 202 at once. */
export function mailPushHook(opts: MailPushHookOptions): OpsHandler {
  const counter = opts.metrics
    ? new Counter({
        name: 'mmgw_mail_push_hooks_total',
        help: 'New-mail hook calls from mail servers, by result (accepted, unauthorized, bad_input).',
        labelNames: ['result'],
        registers: [opts.metrics],
      })
    : undefined;
  return async (req, res, url) => {
    if (url.pathname !== MAIL_PUSH_PATH) return false;
    if (req.method !== 'POST' && req.method !== 'PUT') {
      res.writeHead(405, { allow: 'POST, PUT' }).end();
      return true;
    }
    if (!hookAuthorized(req.headers.authorization, opts.token)) {
      counter?.inc({ result: 'unauthorized' });
      throw new GatewayError('auth.bad_secret', 'push hook: missing or wrong token');
    }
    let notice: MailPushNotice;
    try {
      notice = parseMailPushNotice(await readJson(req), url.searchParams.get('host'));
    } catch (err) {
      counter?.inc({ result: 'bad_input' });
      throw err;
    }
    // Answer first: the mail server's delivering process waits for this reply.
    opts.bus.publish(MAIL_PUSH_SUBJECT, notice);
    counter?.inc({ result: 'accepted' });
    opts.logger?.debug({ user: notice.user, folder: notice.folder, uid: notice.uid }, 'mail push hook');
    sendJson(res, 202, { accepted: true });
    return true;
  };
}

/** The transport side: every notice on the bus goes to `deliver` (the node's InboxWatchers.notify). */
export function subscribeMailPush(
  bus: Bus,
  deliver: (notice: MailPushNotice) => void,
  logger?: Logger,
): Subscription {
  return bus.subscribe(MAIL_PUSH_SUBJECT, (msg) => {
    const parsed = busNotice.safeParse(msg.data);
    if (!parsed.success) {
      logger?.debug('malformed mail push notice on the bus');
      return;
    }
    const { user, folder, uid, uidValidity, host } = parsed.data;
    deliver({
      user,
      folder,
      ...(uid === undefined ? {} : { uid }),
      ...(uidValidity === undefined ? {} : { uidValidity }),
      ...(host === undefined ? {} : { host }),
    });
  });
}
