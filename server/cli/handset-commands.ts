/**
 * What a `mmgw handset` user types: the JSON-lines vocabulary
 * (docs/handset-json.md) and the interactive prompt's words, parsed into one
 * Command; and the Value <-> JSON mapping both directions use. No I/O:
 * handset.ts reads the lines and runs the commands.
 */
import { z } from 'zod';
import { GatewayError, toGatewayError, type Value } from '../../device-protocol/index.ts';
import { IM_RESPONSE_EVENTS } from '../transport/im/events.ts';
import { MAIL_RESPONSE_EVENTS } from '../transport/mail/events.ts';
import { PUSH_RESPONSE_EVENTS } from '../transport/push/events.ts';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** A Value for JSON output: bytes become {"$base64": "…"} (docs/handset-json.md). */
export function valueToJson(value: Value | undefined): unknown {
  if (value instanceof Uint8Array) return { $base64: Buffer.from(value).toString('base64') };
  if (Array.isArray(value)) return value.map(valueToJson);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = valueToJson(v);
    return out;
  }
  return value;
}

/** JSON input to a Value: {"$base64": "…"} (that one key only) becomes bytes. */
export function jsonToValue(json: unknown, path = 'body'): Value {
  if (json === null || typeof json === 'boolean' || typeof json === 'number' || typeof json === 'string')
    return json;
  if (Array.isArray(json)) return json.map((v, i) => jsonToValue(v, `${path}[${i}]`));
  if (typeof json === 'object') {
    const keys = Object.keys(json);
    const b64 = (json as Record<string, unknown>).$base64;
    if (keys.length === 1 && keys[0] === '$base64') {
      if (typeof b64 !== 'string' || !BASE64.test(b64)) {
        throw new GatewayError('request.bad_input', `${path}.$base64 is not base64`, { field: path });
      }
      return new Uint8Array(Buffer.from(b64, 'base64'));
    }
    const out: { [key: string]: Value } = {};
    for (const k of keys) out[k] = jsonToValue((json as Record<string, unknown>)[k], `${path}.${k}`);
    return out;
  }
  throw new GatewayError('request.bad_input', `${path} is not JSON data`, { field: path });
}

export const HELP = [
  'commands:',
  '  ping                  round trip to the gateway',
  '  echo <text>           sys.echo with <text> as the body',
  '  req <method> [json]   any request; the body is JSON ({"$base64":"…"} for bytes)',
  '  switch ws|poll        move the session to the other carrier',
  '  status                session, carrier, URL and last seq',
  '  mail accounts                       the mail accounts of this device',
  '  mail folders <account>              folders with unread counts',
  '  mail sync <account> [folder]        newest headers (INBOX by default)',
  '  mail read <account> <uid> [folder]  the text of one message',
  '  im login <jid> <password> [host] [port]  sign in to a chat account',
  '  im accounts                         the chat accounts of this device',
  '  im roster <account>                 contacts with their presence',
  '  im send <account> <to> <text>       send a chat message',
  '  im catchup <account> [after]        messages after an archive id',
  "  push vapid                          the gateway's VAPID public key (Web Push)",
  '  push register <endpoint> <p256dh> <auth>  a Web Push subscription as a wake-up channel',
  '  push list                           the wake-up channels of this device',
  '  push unregister <id>                remove a wake-up channel',
  '  help                  this text',
  '  quit                  close the session and exit',
].join('\n');

/** A command from either input form, already parsed. */
export type Command =
  | { cmd: 'ping'; id?: string }
  | {
      cmd: 'request';
      id?: string;
      method: string;
      body?: Value;
      requestId?: string;
      timeoutMs?: number;
      /** Answer under this event name, fields at top level (service commands such as mail.*). */
      event?: string;
    }
  | { cmd: 'switch'; id?: string; transport: 'ws' | 'poll' }
  | { cmd: 'status'; id?: string }
  | { cmd: 'help'; id?: string }
  | { cmd: 'quit'; id?: string };

function badInput(message: string, field?: string): GatewayError {
  return new GatewayError('request.bad_input', message, field === undefined ? {} : { field });
}

export type ParsedJsonCommand =
  | { ok: true; command: Command }
  | { ok: false; id?: string; error: GatewayError };

// ---- the JSON-lines vocabulary (docs/handset-json.md), one schema per command ----------------
// Each issue carries the words the handset prints for it; the field is the issue's path.

const requestIdField = z.string({ error: '"requestId" must be a non-empty string' }).min(1).optional();
const timeoutMsField = z.number({ error: '"timeoutMs" must be a positive number' }).positive().optional();

/** A body in the JSON encoding, as a Value ({"$base64"} objects become bytes). */
const bodyField = z
  .unknown()
  .transform((json, ctx): Value => {
    try {
      return jsonToValue(json);
    } catch (err) {
      const { message, field } = toGatewayError(err);
      ctx.addIssue({ code: 'custom', message, input: json, params: { field } });
      return z.NEVER;
    }
  })
  .optional();

/** The fields of a request, in the order they are checked. */
const requestFields = z.object({
  method: z.string({ error: 'request needs a "method" string' }).min(1),
  body: bodyField,
  requestId: requestIdField,
  timeoutMs: timeoutMsField,
});

function requestCommand(fields: z.output<typeof requestFields>, event?: string): Command {
  const cmd: Command = { cmd: 'request', method: fields.method };
  if (fields.body !== undefined) cmd.body = fields.body;
  if (fields.requestId !== undefined) cmd.requestId = fields.requestId;
  if (fields.timeoutMs !== undefined) cmd.timeoutMs = fields.timeoutMs;
  if (event !== undefined) cmd.event = event;
  return cmd;
}

/** `mail.*`, `im.*` and `push.*`: a service method named by the cmd itself. */
const SERVICE_CMD = /^(mail|im|push)\.[a-z.]+$/;

/**
 * `{"cmd":"mail.sync","account":…}`: a request with the cmd as method and every
 * other field (but id, requestId, timeoutMs) as the body; answered under the
 * method's event name (MAIL_RESPONSE_EVENTS: mail.sync → mail.headers).
 */
const serviceCommand = z
  .looseObject({ cmd: z.string() })
  // The same fields as a request; the method's own checks then run on them.
  .transform(({ id: _id, cmd, requestId, timeoutMs, ...rest }): unknown => ({
    method: cmd,
    body: rest,
    requestId,
    timeoutMs,
  }))
  .pipe(requestFields)
  .transform((fields) =>
    requestCommand(
      fields,
      MAIL_RESPONSE_EVENTS[fields.method] ??
        IM_RESPONSE_EVENTS[fields.method] ??
        PUSH_RESPONSE_EVENTS[fields.method] ??
        fields.method,
    ),
  );

const bareCommand = (cmd: 'ping' | 'status' | 'help' | 'quit') =>
  z.unknown().transform((): Command => ({ cmd }));

const JSON_COMMANDS = new Map<string, z.ZodType<Command>>([
  ['ping', bareCommand('ping')],
  ['status', bareCommand('status')],
  ['help', bareCommand('help')],
  ['quit', bareCommand('quit')],
  ['request', requestFields.transform((fields) => requestCommand(fields))],
  [
    'switch',
    z
      .object({ transport: z.enum(['ws', 'poll'], { error: 'switch needs "transport": "ws" or "poll"' }) })
      .transform(({ transport }): Command => ({ cmd: 'switch', transport })),
  ],
]);

/** Every line is an object; its `id` (a string, or a number taken as its text) is echoed in the answer. */
const commandLine = z.looseObject({
  id: z
    .union([z.string(), z.number().transform(String)])
    .optional()
    .catch(undefined),
  cmd: z.unknown().optional(),
});

/** Parses one JSON input line; a bad one gives request.bad_input, with the line's id when it has one. */
export function parseJsonCommand(line: string): ParsedJsonCommand {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch (err) {
    return { ok: false, error: badInput(`not JSON: ${(err as Error).message}`) };
  }
  const head = commandLine.safeParse(json);
  if (!head.success) return { ok: false, error: badInput('a command is a JSON object') };
  const { id, cmd } = head.data;
  const withId = (r: { ok: false; error: GatewayError }) => (id === undefined ? r : { ...r, id });
  const schema =
    typeof cmd === 'string'
      ? (JSON_COMMANDS.get(cmd) ?? (SERVICE_CMD.test(cmd) ? serviceCommand : undefined))
      : undefined;
  if (schema === undefined) {
    const words = cmd === undefined ? 'missing "cmd"' : `unknown cmd ${JSON.stringify(cmd)}`;
    return withId({ ok: false, error: badInput(words, 'cmd') });
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return { ok: true, command: id === undefined ? parsed.data : { id, ...parsed.data } };
  const issue = parsed.error.issues[0];
  const field = (issue?.code === 'custom' ? issue.params?.field : undefined) ?? issue?.path.join('.');
  return withId({ ok: false, error: badInput(issue?.message ?? 'bad command', field || undefined) });
}

/** A request of an interactive service command, answered under the method's event name in `events`. */
function serviceRequest(events: Record<string, string>) {
  return (method: string, body?: Value): Command => ({
    cmd: 'request',
    method,
    ...(body === undefined ? {} : { body }),
    event: events[method] ?? method,
  });
}

const MAIL_USAGE =
  'usage: mail accounts | mail folders <account> | mail sync <account> [folder] | mail read <account> <uid> [folder]';

/** The interactive `mail …` commands, as the same requests the JSON vocabulary sends. */
function humanMailCommand(rest: string): Command {
  const [sub, ...args] = rest.split(/\s+/).filter((w) => w !== '');
  const request = serviceRequest(MAIL_RESPONSE_EVENTS);
  switch (sub) {
    case 'accounts':
      return request('mail.accounts');
    case 'folders':
      if (args.length !== 1) throw badInput(MAIL_USAGE);
      return request('mail.folders', { account: args[0]! });
    case 'sync':
      if (args.length < 1 || args.length > 2) throw badInput(MAIL_USAGE);
      return request('mail.sync', { account: args[0]!, folder: args[1] ?? 'INBOX', limit: 20 });
    case 'read': {
      const uid = Number(args[1]);
      if (args.length < 2 || args.length > 3 || !Number.isInteger(uid) || uid < 1) throw badInput(MAIL_USAGE);
      return request('mail.body', { account: args[0]!, folder: args[2] ?? 'INBOX', uid });
    }
    default:
      throw badInput(MAIL_USAGE);
  }
}

const IM_USAGE =
  'usage: im login <jid> <password> [host] [port] | im accounts | im roster <account> | im send <account> <to> <text> | im catchup <account> [after]';

/** The interactive `im …` commands, as the same requests the JSON vocabulary sends. */
function humanImCommand(rest: string): Command {
  const words = rest.split(/\s+/).filter((w) => w !== '');
  const [sub, ...args] = words;
  const request = serviceRequest(IM_RESPONSE_EVENTS);
  switch (sub) {
    case 'login': {
      if (args.length < 2 || args.length > 4) throw badInput(IM_USAGE);
      const body: { [k: string]: Value } = { jid: args[0]!, password: args[1]! };
      if (args[2] !== undefined) body.host = args[2];
      if (args[3] !== undefined) {
        const port = Number(args[3]);
        if (!Number.isInteger(port) || port < 1 || port > 65535) throw badInput(IM_USAGE);
        body.port = port;
      }
      return request('im.login', body);
    }
    case 'accounts':
      return request('im.accounts');
    case 'roster':
      if (args.length !== 1) throw badInput(IM_USAGE);
      return request('im.roster', { account: args[0]! });
    case 'send': {
      // The text is the rest of the line, spaces kept.
      const m = /^\s*send\s+(\S+)\s+(\S+)\s+(.+)$/.exec(rest);
      if (!m) throw badInput(IM_USAGE);
      const clientId = `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
      return request('im.send', { account: m[1]!, to: m[2]!, body: m[3]!.trim(), clientId });
    }
    case 'catchup':
      if (args.length < 1 || args.length > 2) throw badInput(IM_USAGE);
      return request('im.catchup', {
        account: args[0]!,
        ...(args[1] === undefined ? {} : { after: args[1] }),
      });
    default:
      throw badInput(IM_USAGE);
  }
}

const PUSH_USAGE =
  'usage: push vapid | push register <endpoint> <p256dh> <auth> | push list | push unregister <id>';

/** The interactive `push …` commands (wake-up channels), as the same requests the JSON vocabulary sends. */
function humanPushCommand(rest: string): Command {
  const [sub, ...args] = rest.split(/\s+/).filter((w) => w !== '');
  const request = serviceRequest(PUSH_RESPONSE_EVENTS);
  switch (sub) {
    case 'vapid':
      if (args.length !== 0) throw badInput(PUSH_USAGE);
      return request('push.vapid');
    case 'list':
      if (args.length !== 0) throw badInput(PUSH_USAGE);
      return request('push.list');
    case 'register':
      if (args.length !== 3) throw badInput(PUSH_USAGE);
      return request('push.register', {
        kind: 'webpush',
        endpoint: args[0]!,
        keys: { p256dh: args[1]!, auth: args[2]! },
      });
    case 'unregister':
      if (args.length !== 1) throw badInput(PUSH_USAGE);
      return request('push.unregister', { id: args[0]! });
    default:
      throw badInput(PUSH_USAGE);
  }
}

/** Parses one interactive line; undefined for a blank line. */
export function parseHumanCommand(line: string): Command | undefined {
  const text = line.trim();
  if (text === '') return undefined;
  const space = text.indexOf(' ');
  const word = (space < 0 ? text : text.slice(0, space)).toLowerCase();
  const rest = space < 0 ? '' : text.slice(space + 1).trim();
  switch (word) {
    case 'ping':
    case 'status':
    case 'help':
    case '?':
      return { cmd: word === '?' ? 'help' : word };
    case 'quit':
    case 'exit':
      return { cmd: 'quit' };
    case 'echo':
      return { cmd: 'request', method: 'sys.echo', body: rest };
    case 'req':
    case 'request': {
      if (rest === '') throw badInput('usage: req <method> [json body]');
      const sp = rest.indexOf(' ');
      const method = sp < 0 ? rest : rest.slice(0, sp);
      const bodyText = sp < 0 ? '' : rest.slice(sp + 1).trim();
      const cmd: Command = { cmd: 'request', method };
      if (bodyText !== '') {
        let json: unknown;
        try {
          json = JSON.parse(bodyText);
        } catch (err) {
          throw badInput(`the body is not JSON: ${(err as Error).message}`);
        }
        cmd.body = jsonToValue(json);
      }
      return cmd;
    }
    case 'switch':
      if (rest !== 'ws' && rest !== 'poll') throw badInput('usage: switch ws|poll');
      return { cmd: 'switch', transport: rest };
    case 'mail':
      return humanMailCommand(rest);
    case 'im':
      return humanImCommand(rest);
    case 'push':
      return humanPushCommand(rest);
    default:
      throw badInput(`unknown command "${word}" (type help)`);
  }
}
