/**
 * `mmgw handset`: a terminal handset on the Handset SDK.
 *
 * - `--json`: JSON lines, one object per line both ways; the vocabulary is
 *   documented in docs/handset-json.md and only ever grows (names are stable).
 * - otherwise: an interactive prompt (ping, echo, req, switch, status, help, quit).
 *
 * Exit code: 0 after quit or end of input, 2 when the session ends for good
 * (auth refused, device disabled, session taken over by another connection)
 * or cannot begin (before any session, every URL refused the connection or
 * names no host: said at once, not retried), 130 after Ctrl-C at the prompt.
 */

import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { z } from 'zod';
import { GatewayError, Handset, toGatewayError, type Value } from '../../device-protocol/index.ts';
import { IM_RESPONSE_EVENTS } from '../transport/im/events.ts';
import { MAIL_RESPONSE_EVENTS } from '../transport/mail/events.ts';
import { describeValue } from './handset-text.ts';

export interface RunHandsetOptions {
  /** The gateway's URLs (`--url` repeated): tried in turn, the last good one first. */
  urls: string[];
  imei: string;
  secret?: string;
  json: boolean;
  transport: 'ws' | 'poll' | 'auto';
  input?: NodeJS.ReadableStream;
  output?: NodeJS.WritableStream;
  /** For tests: SDK options passed through (timeouts, backoff). */
  handsetOptions?: Partial<ConstructorParameters<typeof Handset>[0]>;
  /** quit or end of input before the first connection waits this long for its outcome. Default 10000. */
  connectWaitMs?: number;
}

const CLIENT = 'mmgw-cli/0.1';

/** `--ca FILE`: the PEM text, or a typed error naming the file (not one that only fails at the first handshake). */
export function readCaFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new GatewayError('config.invalid', `--ca: cannot read ${path}: ${(err as Error).message}`, {
      field: 'ca',
    });
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new GatewayError('config.invalid', `--ca: ${path} holds no PEM certificate`, { field: 'ca' });
  }
  return text;
}
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

/** What the command loop needs from either presentation (JSON lines or a human prompt). */
interface Presenter {
  connected(e: { sessionId: string; transport: string; resumed: boolean; url: string }): void;
  disconnected(e: { code?: string; reason: string; willReconnect: boolean }): void;
  reconnecting(e: { attempt: number; delayMs: number; transport: string; url: string }): void;
  push(e: { name: string; body?: Value; seq: number }): void;
  error(err: GatewayError, id?: string): void;
  pong(rttMs: number, id?: string): void;
  response(body: Value | undefined, id?: string): void;
  /** The answer to a service command (`mail.*`): its own event name, fields at top level. */
  named(event: string, body: Value | undefined, id?: string): void;
  switched(transport: string, id?: string): void;
  status(s: { session?: string; transport?: string; lastSeq: number; url: string }, id?: string): void;
  text(line: string): void;
}

function jsonPresenter(write: (line: string) => void): Presenter {
  const emit = (obj: Record<string, unknown>) => write(JSON.stringify(obj));
  const withId = (id: string | undefined, obj: Record<string, unknown>) =>
    id === undefined ? obj : { id, ...obj };
  return {
    connected: (e) =>
      emit({
        event: 'connected',
        session: e.sessionId,
        transport: e.transport,
        resumed: e.resumed,
        url: e.url,
      }),
    disconnected: (e) =>
      emit({
        event: 'disconnected',
        ...(e.code === undefined ? {} : { code: e.code }),
        reason: e.reason,
        willReconnect: e.willReconnect,
      }),
    reconnecting: (e) =>
      emit({
        event: 'reconnecting',
        attempt: e.attempt,
        delayMs: e.delayMs,
        transport: e.transport,
        url: e.url,
      }),
    push: (e) =>
      // Service events (mail.new, mail.account.state, im.message, im.presence) are written under their own name, fields at top level.
      e.name.startsWith('mail.') || e.name.startsWith('im.')
        ? emit({ event: e.name, ...spreadable(e.body) })
        : emit({
            event: 'push',
            name: e.name,
            ...(e.body === undefined ? {} : { body: valueToJson(e.body) }),
            seq: e.seq,
          }),
    error: (err, id) =>
      emit(
        withId(id, {
          event: 'error',
          code: err.code,
          message: err.message,
          ...(err.retryAfterMs === undefined ? {} : { retryAfterMs: err.retryAfterMs }),
        }),
      ),
    pong: (rttMs, id) => emit(withId(id, { event: 'pong', rttMs })),
    response: (body, id) =>
      emit(withId(id, { event: 'response', ...(body === undefined ? {} : { body: valueToJson(body) }) })),
    named: (event, body, id) => emit(withId(id, { event, ...spreadable(body) })),
    switched: (transport, id) => emit(withId(id, { event: 'switched', transport })),
    status: (s, id) =>
      emit(
        withId(id, {
          event: 'status',
          session: s.session ?? null,
          transport: s.transport ?? null,
          lastSeq: s.lastSeq,
          url: s.url,
        }),
      ),
    text: () => {},
  };
}

/** A body's fields for spreading beside id/event; a non-object body goes under `body`. */
function spreadable(body: Value | undefined): Record<string, unknown> {
  if (body === undefined) return {};
  const json = valueToJson(body);
  if (json !== null && typeof json === 'object' && !Array.isArray(json)) {
    const { id: _id, event: _event, ...rest } = json as Record<string, unknown>;
    return rest;
  }
  return { body: json };
}

function humanPresenter(write: (line: string) => void): Presenter {
  return {
    connected: (e) =>
      write(
        `connected: session ${e.sessionId} over ${e.transport} to ${e.url} (${e.resumed ? 'resumed' : 'new session'})`,
      ),
    disconnected: (e) =>
      write(
        `disconnected: ${e.reason}${e.code ? ` [${e.code}]` : ''}${e.willReconnect ? ', reconnecting' : ', giving up'}`,
      ),
    reconnecting: (e) =>
      write(`reconnecting over ${e.transport} to ${e.url} in ${e.delayMs} ms (attempt ${e.attempt})`),
    push: (e) => write(describeValue(`push #${e.seq} ${e.name}`, e.body)),
    error: (err) => write(`error [${err.code}] ${err.message}`),
    pong: (rttMs) => write(`pong in ${rttMs} ms`),
    response: (body) => write(describeValue('response', body)),
    named: (event, body) => write(describeValue(event, body)),
    switched: (transport) => write(`switched to ${transport}`),
    status: (s) =>
      write(
        `session ${s.session ?? '-'} over ${s.transport ?? '(disconnected)'} to ${s.url}, last seq ${s.lastSeq}`,
      ),
    text: write,
  };
}

const HELP = [
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
  '  help                  this text',
  '  quit                  close the session and exit',
].join('\n');

/** A command from either input form, already parsed. */
type Command =
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

/** `mail.*` and `im.*`: a service method named by the cmd itself. */
const SERVICE_CMD = /^(mail|im)\.[a-z.]+$/;

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
      MAIL_RESPONSE_EVENTS[fields.method] ?? IM_RESPONSE_EVENTS[fields.method] ?? fields.method,
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

const MAIL_USAGE =
  'usage: mail accounts | mail folders <account> | mail sync <account> [folder] | mail read <account> <uid> [folder]';

/** The interactive `mail …` commands, as the same requests the JSON vocabulary sends. */
function humanMailCommand(rest: string): Command {
  const [sub, ...args] = rest.split(/\s+/).filter((w) => w !== '');
  const request = (method: string, body?: Value): Command => ({
    cmd: 'request',
    method,
    ...(body === undefined ? {} : { body }),
    event: MAIL_RESPONSE_EVENTS[method] ?? method,
  });
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
  const request = (method: string, body?: Value): Command => ({
    cmd: 'request',
    method,
    ...(body === undefined ? {} : { body }),
    event: IM_RESPONSE_EVENTS[method] ?? method,
  });
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
    default:
      throw badInput(`unknown command "${word}" (type help)`);
  }
}

/** A refusal that retrying soon cannot cure: what went wrong, and what to check. */
export interface Unreachable {
  why: string;
  hint: string;
}

const NOT_LISTENING = 'is the gateway running, and is this its device port?';

/**
 * Why a failed first attempt cannot succeed by retrying soon: nothing listens
 * there, no such host, or a TLS certificate this handset does not trust.
 */
export function unreachable(reason: string | undefined): Unreachable | undefined {
  if (reason === undefined) return undefined;
  if (/ECONNREFUSED/.test(reason)) return { why: 'connection refused', hint: NOT_LISTENING };
  if (/ENOTFOUND|EAI_NONAME/.test(reason)) return { why: 'no such host', hint: NOT_LISTENING };
  // Node's TLS words: "self-signed certificate", "unable to verify the first certificate",
  // "certificate has expired", "Hostname/IP does not match certificate's altnames", ...
  const tls = /[^(;]*(certificate|altnames)[^);]*/i.exec(reason);
  if (tls)
    return {
      why: `TLS certificate not accepted: ${tls[0].trim()}`,
      hint: 'pass --ca FILE with the certificate of the CA that signed it, or check the host name',
    };
  return undefined;
}

export async function runHandset(opts: RunHandsetOptions): Promise<number> {
  const input = opts.input ?? process.stdin;
  const output = opts.output ?? process.stdout;
  const tty =
    !opts.json &&
    Boolean((input as { isTTY?: boolean }).isTTY) &&
    Boolean((output as { isTTY?: boolean }).isTTY);

  let handset: Handset;
  try {
    handset = new Handset({
      urls: opts.urls,
      imei: opts.imei,
      ...(opts.secret === undefined ? {} : { secret: opts.secret }),
      transport: opts.transport,
      client: CLIENT,
      WebSocket,
      ...opts.handsetOptions,
    });
  } catch (err) {
    const e = toGatewayError(err);
    const line = opts.json
      ? JSON.stringify({ event: 'error', code: e.code, message: e.message })
      : `error [${e.code}] ${e.message}`;
    output.write(`${line}\n`);
    return 2;
  }

  const rl = createInterface({ input, terminal: tty, ...(tty ? { output } : {}) });
  if (tty) rl.setPrompt('mmgw> ');
  const write = (line: string) => {
    if (tty) {
      // Print above the prompt, then redraw it with what was typed so far.
      output.write(`\r\x1b[K${line}\n`);
      if (!finished) rl.prompt(true);
    } else {
      output.write(`${line}\n`);
    }
  };
  const ui = opts.json ? jsonPresenter(write) : humanPresenter(write);

  let finished = false;
  let ending = false;
  const inflight = new Set<Promise<void>>();
  let resolveExit!: (code: number) => void;
  const exit = new Promise<number>((resolve) => (resolveExit = resolve));

  const finish = async (code: number) => {
    if (finished) return;
    finished = true;
    rl.close();
    await handset.close();
    await Promise.allSettled(inflight);
    // Let what was written reach the pipe before the caller exits.
    await new Promise<void>((resolve) => output.write('', () => resolve()));
    resolveExit(code);
  };

  // Before the first session, a URL where nothing listens (or whose host does not
  // resolve) is a mistake to report at once, not to retry for half a minute.
  let connectedOnce = false;
  let tried = opts.urls[0] ?? '';
  const refused = new Set<string>();
  handset.on('connected', (e) => {
    connectedOnce = true;
    ui.connected(e);
  });
  handset.on('reconnecting', (e) => {
    const failed = tried;
    tried = e.url;
    const why = connectedOnce ? undefined : unreachable(e.reason);
    if (why !== undefined) {
      refused.add(failed);
      if (opts.urls.every((u) => refused.has(u))) {
        ui.error(
          new GatewayError(
            'request.unavailable',
            `cannot connect to ${opts.urls.join(', ')}: ${why.why} (${why.hint})`,
          ),
        );
        void finish(2);
        return;
      }
    }
    ui.reconnecting(e);
  });
  handset.on('event', (e) => ui.push(e));
  handset.on('error', (err) => ui.error(err));
  handset.on('disconnected', (e) => {
    if (finished) return;
    ui.disconnected(e);
    // The SDK gave up (auth refused, disabled, replaced): so do we.
    if (!e.willReconnect) void finish(2);
  });

  // Settles with the first connection's outcome (connected or refused).
  const firstOutcome = handset.connect().then(
    () => {},
    () => {},
  );
  /**
   * quit or end of input: answer what was asked before, then close. Input
   * that ends at once (`< /dev/null`) still shows whether the handset gets in.
   */
  const endAfterInflight = async () => {
    if (ending) return;
    ending = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, opts.connectWaitMs ?? 10_000)));
    await Promise.race([firstOutcome, bound]);
    clearTimeout(timer);
    await Promise.allSettled(inflight);
    await finish(0);
  };

  const track = (p: Promise<void>) => {
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  };

  const run = (command: Command) => {
    const id = command.id;
    const fail = (err: unknown) => {
      if (!finished || opts.json) ui.error(toGatewayError(err), id);
    };
    switch (command.cmd) {
      case 'ping':
        track(handset.ping().then((rtt) => ui.pong(rtt, id), fail));
        return;
      case 'request': {
        const options: { id?: string; timeoutMs?: number } = {};
        if (command.requestId !== undefined) options.id = command.requestId;
        if (command.timeoutMs !== undefined) options.timeoutMs = command.timeoutMs;
        const event = command.event;
        track(
          handset
            .request(command.method, command.body, options)
            .then((body) => (event === undefined ? ui.response(body, id) : ui.named(event, body, id)), fail),
        );
        return;
      }
      case 'switch':
        track(
          handset.switchTransport(command.transport).then(() => ui.switched(command.transport, id), fail),
        );
        return;
      case 'status': {
        const s: { session?: string; transport?: string; lastSeq: number; url: string } = {
          lastSeq: handset.lastSeq,
          url: handset.url,
        };
        if (handset.sessionId !== undefined) s.session = handset.sessionId;
        if (handset.transport !== undefined) s.transport = handset.transport;
        ui.status(s, id);
        return;
      }
      case 'help':
        ui.text(HELP);
        return;
      case 'quit':
        void endAfterInflight();
        return;
    }
  };

  rl.on('line', (line) => {
    if (finished || ending) return;
    if (opts.json) {
      if (line.trim() === '') return;
      const parsed = parseJsonCommand(line);
      if (parsed.ok) run(parsed.command);
      else ui.error(parsed.error, parsed.id);
      return;
    }
    let command: Command | undefined;
    try {
      command = parseHumanCommand(line);
    } catch (err) {
      // A typo or a usage slip at the prompt: its words, not an error code of the protocol.
      ui.text(toGatewayError(err).message);
      return;
    }
    // Every answer is written with the prompt after it (write): prompting here
    // too would draw it twice. Only a blank line has nothing to answer.
    if (command === undefined) {
      if (tty) rl.prompt();
    } else run(command);
  });
  // Ctrl-C at the prompt: stop now, with the shell's code for an interrupt.
  rl.on('SIGINT', () => void finish(130));
  rl.on('close', () => void endAfterInflight());

  if (tty) write(`mmgw handset ${opts.imei} → ${opts.urls.join(', ')} (${opts.transport}); type help`);
  return exit;
}
