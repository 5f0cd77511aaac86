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
import { GatewayError, Handset, toGatewayError, type Value } from '../../device-protocol/index.ts';
import { type Command, HELP, parseHumanCommand, parseJsonCommand, valueToJson } from './handset-commands.ts';
import { describeValue } from './handset-text.ts';

export {
  jsonToValue,
  type ParsedJsonCommand,
  parseHumanCommand,
  parseJsonCommand,
  valueToJson,
} from './handset-commands.ts';

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
