/**
 * `npm run bench:mail`: the mail benchmark of issue 3, against a real gateway
 * process (`mmgw start`, every role), a private Dovecot and real handsets
 * (the Handset SDK over WebSocket).
 *
 *  (a) Bytes on the air: one handset session that syncs 200 INBOX headers and
 *      opens the 10 newest bodies, against imapflow doing the same directly to
 *      Dovecot (headers with ENVELOPE, FLAGS, BODYSTRUCTURE, size; each body as
 *      a mail client shows it: the HTML part when there is one, else the text).
 *      Handset: WebSocket payload bytes both ways at the client, session setup
 *      included. IMAP: socket bytes both ways, login and logout included.
 *  (b) Dovecot alone: one IDLE-ing imapflow client; the time from an APPEND
 *      to the untagged EXISTS, and to the push hook's HTTP call
 *      (docs/dovecot/mmgw-push.lua) at a plain HTTP listener.
 *  (c) Push latency: N devices connected, each with its own mail account and
 *      its INBOX watched (IDLE); the time from the APPEND on Dovecot (sent by
 *      an already logged-in client) to the mail.new event at the handset.
 *      First with Dovecot calling the gateway's new-mail hook, then IDLE alone:
 *      each on a fresh gateway, Dovecot and fleet of the same size, same run.
 *
 *   npm run bench:mail -- [--devices 1000] [--samples 500] [--idle-samples 200] [--no-hook]
 *                         [--concurrency 4] [--smoke] [--out FILE | --no-write]
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { ImapFlow } from 'imapflow';
import WebSocket from 'ws';
import { Handset } from '../../../device-protocol/handset.ts';
import { findTextPart } from '../../../server/transport/mail/headers.ts';
import { type DovecotServer, startDovecot } from '../../harness/dovecot.ts';
import { MAIL_PUSH_PATH } from '../../../server/transport/mail/push-hook.ts';
import { type Gateway, startGateway } from '../../harness/gateway.ts';
import { provisionDevices } from '../edge/provision.ts';
import { rssBytes } from '../edge/proc-stats.ts';
import { benchMessage } from './corpus.ts';

interface Options {
  devices: number;
  samples: number;
  /** Samples of the second fleet, without the hook (IDLE alone); 0 skips it. */
  idleSamples: number;
  hook: boolean;
  concurrency: number;
  out: string | undefined;
}

const RESULTS = fileURLToPath(new URL('../RESULTS.md', import.meta.url));

function parseArgs(argv: string[]): Options {
  const o: Options = {
    devices: 1000,
    samples: 500,
    idleSamples: 200,
    hook: true,
    concurrency: 4,
    out: RESULTS,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${a} needs a positive integer`);
      return n;
    };
    if (a === '--devices') o.devices = num();
    else if (a === '--samples') o.samples = num();
    else if (a === '--concurrency') o.concurrency = num();
    else if (a === '--idle-samples') o.idleSamples = Number(argv[++i]);
    else if (a === '--no-hook') o.hook = false;
    else if (a === '--out') o.out = argv[++i];
    else if (a === '--no-write') o.out = undefined;
    else if (a === '--smoke') {
      o.devices = 20;
      o.samples = 20;
      o.idleSamples = 10;
      o.out = undefined;
    } else throw new Error(`unknown flag ${a}`);
  }
  return o;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

const counters = { in: 0, out: 0 };
const size = (d: unknown): number =>
  d instanceof ArrayBuffer
    ? d.byteLength
    : ArrayBuffer.isView(d)
      ? d.byteLength
      : Array.isArray(d)
        ? d.reduce((n, b) => n + b.length, 0)
        : typeof d === 'string'
          ? Buffer.byteLength(d)
          : 0;

/** A `ws` WebSocket that counts message payload bytes both ways (frame headers aside). */
class CountingWebSocket extends WebSocket {
  constructor(...args: ConstructorParameters<typeof WebSocket>) {
    super(...args);
    this.on('message', (data: unknown) => {
      counters.in += size(data);
    });
  }
  override send(data: any, ...rest: any[]): void {
    counters.out += size(data);
    (super.send as (...a: unknown[]) => void)(data, ...rest);
  }
}

function handset(gw: Gateway, imei: string, secret: string, ws: typeof WebSocket = WebSocket): Handset {
  return new Handset({
    url: gw.url,
    imei,
    secret,
    transport: 'ws',
    WebSocket: ws,
    client: 'mmgw-bench-mail/1',
    requestTimeoutMs: 120_000,
    backoff: { initialMs: 200, maxMs: 2000 },
  });
}

const user = (n: number) => ({ user: `d${n}@example.test`, password: `pw-${n}` });
const AIR = { user: 'air@example.test', password: 'air-pw' };

function accountBody(dovecot: DovecotServer, u: { user: string; password: string }) {
  return {
    address: u.user,
    imap: { host: dovecot.host, port: dovecot.imapPort, tls: 'none', user: u.user, password: u.password },
    // No SMTP peer in this run: the SMTP check of mail.account.add needs a server; Dovecot's
    // submission is not configured, so a tiny always-OK SMTP listener stands in (see smtpStub).
    smtp: { host: '127.0.0.1', port: smtpStubPort, tls: 'none', user: u.user, password: u.password },
  };
}

let smtpStubPort = 0;

/** The smallest SMTP server that passes nodemailer's verify() (EHLO, AUTH PLAIN, QUIT). */
async function smtpStub(): Promise<{ port: number; stop(): Promise<void> }> {
  const server = createServer((sock) => {
    sock.write('220 stub ESMTP\r\n');
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      let nl = buf.indexOf('\r\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl).toUpperCase();
        buf = buf.slice(nl + 2);
        if (line.startsWith('EHLO')) sock.write('250-stub\r\n250 AUTH PLAIN LOGIN\r\n');
        else if (line.startsWith('AUTH')) sock.write('235 ok\r\n');
        else if (line.startsWith('QUIT')) sock.end('221 bye\r\n');
        else sock.write('250 ok\r\n');
        nl = buf.indexOf('\r\n');
      }
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    stop: () => new Promise<void>((r) => server.close(() => r())),
  };
}

// ---- (a) bytes on the air ---------------------------------------------------

interface AirResult {
  handsetIn: number;
  handsetOut: number;
  imapIn: number;
  imapOut: number;
  headers: number;
  bodies: number;
  inboxBytes: number;
  /** Down bytes of the header part alone (handset: hello + sync; IMAP: login + SELECT + FETCH). */
  handsetHeadersIn: number;
  imapHeadersIn: number;
  /** The same with `items` on the wire (`compact: false`). */
  itemsHeadersIn: number;
  itemsTotal: number;
}

/** The part a mail client shows: text/html when there is one, else text/plain. */
function displayPart(node: any): string | undefined {
  let html: string | undefined;
  let plain: string | undefined;
  const walk = (n: any) => {
    if (!n) return;
    if (n.childNodes) for (const c of n.childNodes) walk(c);
    else if (n.disposition !== 'attachment') {
      if (n.type === 'text/html' && !html) html = n.part ?? '1';
      if (n.type === 'text/plain' && !plain) plain = n.part ?? '1';
    }
  };
  walk(node);
  return html ?? plain;
}

async function bytesOnTheAir(
  gw: Gateway,
  dovecot: DovecotServer,
  device: [string, string],
): Promise<AirResult> {
  // One-time setup in its own session: the account (not counted: done once per device, not per sync).
  const setup = handset(gw, device[0], device[1]);
  await setup.connect();
  const { account } = await setup.request<any>('mail.account.add', accountBody(dovecot, AIR));
  await setup.close();

  counters.in = 0;
  counters.out = 0;
  const h = handset(gw, device[0], device[1], CountingWebSocket as unknown as typeof WebSocket);
  await h.connect();
  // The SDK's default: the compact header table on the wire, `items` for the application.
  const sync = await h.request<any>('mail.sync', { account, folder: 'INBOX', limit: 200 });
  const handsetHeadersIn = counters.in;
  const newestUids = (sync.items as { uid: number }[]).slice(0, 10).map((r) => r.uid);
  for (const uid of newestUids) await h.request('mail.body', { account, folder: 'INBOX', uid });
  await h.close();
  const handsetIn = counters.in;
  const handsetOut = counters.out;

  // The same session with `items` on the wire (field names per message), for the record.
  counters.in = 0;
  counters.out = 0;
  const plain = handset(gw, device[0], device[1], CountingWebSocket as unknown as typeof WebSocket);
  await plain.connect();
  const items = await plain.request<any>('mail.sync', {
    account,
    folder: 'INBOX',
    limit: 200,
    compact: false,
  });
  const itemsHeadersIn = counters.in;
  for (const uid of newestUids) await plain.request('mail.body', { account, folder: 'INBOX', uid });
  await plain.close();
  const itemsTotal = counters.in + counters.out;
  if (JSON.stringify(items.items) !== JSON.stringify(sync.items))
    throw new Error('the two header forms disagree');

  const imap = new ImapFlow({
    host: dovecot.host,
    port: dovecot.imapPort,
    secure: false,
    doSTARTTLS: false,
    auth: { user: AIR.user, pass: AIR.password },
    logger: false,
  });
  await imap.connect();
  const socket = (imap as unknown as { socket: import('node:net').Socket }).socket;
  await imap.mailboxOpen('INBOX');
  const rows = await imap.fetchAll(
    '1:*',
    { uid: true, flags: true, envelope: true, bodyStructure: true, size: true, internalDate: true },
    { uid: false },
  );
  const inboxBytes = rows.reduce((n, r) => n + (r.size ?? 0), 0);
  // The list shows a preview, as the handset's does: the first 1 KiB of each text part (what mmgw fetches too).
  const byPart = new Map<string, number[]>();
  for (const row of rows) {
    const text = findTextPart(row.bodyStructure);
    if (!text) continue;
    byPart.set(text.part, [...(byPart.get(text.part) ?? []), row.uid]);
  }
  for (const [part, uids] of byPart) {
    await imap.fetchAll(
      uids.join(','),
      { uid: true, bodyParts: [{ key: part, start: 0, maxLength: 1024 }] } as never,
      { uid: true },
    );
  }
  const imapHeadersIn = socket.bytesRead;
  const top = [...rows].sort((a, b) => b.uid - a.uid).slice(0, 10);
  for (const row of top) {
    const part = displayPart(row.bodyStructure);
    if (!part) continue;
    const { content } = await imap.download(String(row.uid), part, { uid: true });
    for await (const _chunk of content ?? []) {
      // drain
    }
  }
  await imap.logout();
  return {
    handsetIn,
    handsetOut,
    imapIn: socket.bytesRead,
    imapOut: socket.bytesWritten,
    headers: sync.items.length,
    bodies: newestUids.length,
    itemsHeadersIn,
    itemsTotal,
    inboxBytes,
    handsetHeadersIn,
    imapHeadersIn,
  };
}

// ---- (b) Dovecot alone ------------------------------------------------------

interface DovecotAlone {
  /** APPEND → untagged EXISTS at an IDLE-ing imapflow client, sorted. */
  exists: number[];
  /** APPEND → the push hook's HTTP request at a local listener, sorted. */
  hook: number[];
}

const ALONE = { user: 'alone@example.test', password: 'alone-pw' };

async function dovecotAlone(samples: number): Promise<DovecotAlone> {
  let onHook: ((at: number) => void) | undefined;
  const listener = createHttpServer((req, res) => {
    const at = performance.now();
    req.resume();
    req.on('end', () => {
      onHook?.(at);
      res.writeHead(202).end();
    });
  });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  const port = (listener.address() as { port: number }).port;
  const dovecot = await startDovecot({
    users: [ALONE],
    pushHook: { url: `http://127.0.0.1:${port}${MAIL_PUSH_PATH}`, token: 'bench-alone-token-0000' },
  });
  const out: DovecotAlone = { exists: [], hook: [] };
  try {
    const idle = await dovecot.connect(ALONE.user);
    await idle.mailboxOpen('INBOX');
    let onExists: ((at: number) => void) | undefined;
    idle.on('exists', () => onExists?.(performance.now()));
    void idle.idle().catch(() => {});
    const writer = await dovecot.connect(ALONE.user);
    const within = (p: Promise<number>) =>
      Promise.race([p, new Promise<number>((r) => setTimeout(() => r(-1), 5000))]);
    for (let k = 0; k < samples; k++) {
      await new Promise((r) => setTimeout(r, 50));
      const exists = new Promise<number>((r) => (onExists = r));
      const hook = new Promise<number>((r) => (onHook = r));
      const t0 = performance.now();
      await writer.append(
        'INBOX',
        `Subject: alone ${k}

x
`,
      );
      const [te, th] = await Promise.all([within(exists), within(hook)]);
      if (te >= 0) out.exists.push(te - t0);
      if (th >= 0) out.hook.push(th - t0);
    }
    await writer.logout();
    idle.close();
  } finally {
    await dovecot.stop({ removeDir: true });
    listener.close();
  }
  out.exists.sort((a, b) => a - b);
  out.hook.sort((a, b) => a - b);
  return out;
}

// ---- (c) push latency -------------------------------------------------------

interface PushPhase {
  /** 'hook': Dovecot calls the gateway's new-mail hook (IDLE still on); 'idle': IDLE alone. */
  name: 'hook' | 'idle';
  samples: number[];
  missed: number;
  /**
   * IDLE path only: per sample, the untagged EXISTS at the benchmark's own
   * IDLE-ing client of the same user → the handset's mail.new, i.e. the
   * gateway's own share (EXISTS → FETCH → bus → edge → WebSocket → SDK). Sorted.
   */
  afterExists: number[];
  /** IDLE path only: APPEND → that observer's EXISTS. Sorted. */
  existsAfterAppend: number[];
}

interface PushResult {
  devices: number;
  connected: number;
  phase: PushPhase;
  setupSeconds: number;
  gatewayRssMb: number;
  imapProcesses: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

function countImapProcesses(): number {
  let n = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'imap') n++;
    } catch {
      // gone
    }
  }
  return n;
}

async function pushLatency(
  gw: Gateway,
  dovecot: DovecotServer,
  devices: [string, string][],
  opts: Options,
  mode: PushPhase['name'],
  count: number,
): Promise<PushResult> {
  const started = performance.now();
  const waiting = new Map<string, (at: number) => void>();
  const handsets = devices.map((d, n) => {
    const h = handset(gw, d[0], d[1]);
    h.on('event', (e) => {
      if (e.name !== 'mail.new') return;
      const subject = (e.body as any)?.header?.subject as string;
      const done = waiting.get(`${n + 1}:${subject}`);
      if (done) {
        waiting.delete(`${n + 1}:${subject}`);
        done(performance.now());
      }
    });
    return h;
  });
  const arrived = (n: number, subject: string) =>
    new Promise<number>((resolve) => waiting.set(`${n}:${subject}`, resolve));

  await pool(handsets, 50, (h) => h.connect());
  console.log(`  ${handsets.length} handsets connected`);
  const accounts = await pool(handsets, 16, async (h, i) => {
    const res = await h.request<any>('mail.account.add', accountBody(dovecot, user(i + 1)));
    await h.request('mail.sync', { account: res.account, folder: 'INBOX', limit: 20 });
    return res.account as string;
  });
  console.log(`  ${accounts.length} accounts added and INBOXes watched`);
  // Warm-up: one message per device proves every watcher is IDLE and pushing.
  let warmupMissed = 0;
  await pool(accounts, 8, async (_a, i) => {
    const got = arrived(i + 1, 'warm-up');
    await dovecot.appendMessage(user(i + 1).user, 'INBOX', 'Subject: warm-up\r\n\r\nwarm\r\n');
    if ((await Promise.race([got, new Promise<number>((r) => setTimeout(() => r(-1), 60_000))])) < 0) {
      warmupMissed++;
    }
  });
  if (warmupMissed > 0) console.log(`  ${warmupMissed} devices got no warm-up mail.new within 60 s`);
  const setupSeconds = (performance.now() - started) / 1000;
  console.log(`  every device got its warm-up mail.new (${setupSeconds.toFixed(0)} s of setup)`);

  const phase = async (name: PushPhase['name']): Promise<PushPhase> => {
    const picks = Array.from({ length: count }, (_, k) => 1 + ((k * 7919) % devices.length));
    const samples: number[] = [];
    const afterExists: number[] = [];
    const existsAfterAppend: number[] = [];
    let missed = 0;
    const login = async (u: { user: string; password: string }) => {
      const client = new ImapFlow({
        host: dovecot.host,
        port: dovecot.imapPort,
        secure: false,
        doSTARTTLS: false,
        auth: { user: u.user, pass: u.password },
        logger: false,
      });
      await client.connect();
      return client;
    };
    await pool(picks, opts.concurrency, async (n, k) => {
      const u = user(n);
      const client = await login(u);
      // On the IDLE path, an observer IDLE-ing like the gateway's watcher (its own Dovecot process)
      // timestamps the EXISTS Dovecot sends for this APPEND.
      const observer = name === 'idle' ? await login(u) : undefined;
      let existsAt = -1;
      if (observer) {
        await observer.mailboxOpen('INBOX');
        observer.on('exists', () => {
          if (existsAt < 0) existsAt = performance.now();
        });
        void observer.idle().catch(() => {});
        // imapflow sends IDLE on the next tick; let it reach the server before the APPEND.
        await new Promise((r) => setTimeout(r, 20));
      }
      try {
        const subject = `${name} sample ${k}`;
        const got = arrived(n, subject);
        const raw = `From: bench <b@example.test>\r\nSubject: ${subject}\r\n\r\nlatency sample\r\n`;
        const t0 = performance.now();
        await client.append('INBOX', raw);
        const t1 = await Promise.race([got, new Promise<number>((r) => setTimeout(() => r(-1), 30_000))]);
        if (t1 < 0) missed++;
        else samples.push(t1 - t0);
        if (t1 >= 0 && observer) {
          const deadline = performance.now() + 5000;
          while (existsAt < 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
          if (existsAt >= 0) {
            afterExists.push(t1 - existsAt);
            existsAfterAppend.push(existsAt - t0);
          }
        }
      } finally {
        await client.logout().catch(() => client.close());
        observer?.close();
      }
    });
    samples.sort((a, b) => a - b);
    afterExists.sort((a, b) => a - b);
    existsAfterAppend.sort((a, b) => a - b);
    console.log(
      `  ${name}: ${samples.length} samples, missed ${missed}: p50 ${percentile(samples, 50).toFixed(1)} ms, p99 ${percentile(samples, 99).toFixed(1)} ms`,
    );
    if (afterExists.length > 0) {
      console.log(
        `  ${name}: EXISTS at an observing IDLE client → mail.new p50 ${percentile(afterExists, 50).toFixed(1)} ms, p99 ${percentile(afterExists, 99).toFixed(1)} ms`,
      );
    }
    return { name, samples, missed, afterExists, existsAfterAppend };
  };
  const done = await phase(mode);
  const result: PushResult = {
    devices: devices.length,
    connected: handsets.filter((h) => h.sessionId !== undefined).length,
    phase: done,
    setupSeconds,
    gatewayRssMb: rssBytes(gw.pid) / 1048576,
    imapProcesses: countImapProcesses(),
  };
  await pool(handsets, 100, (h) => h.close());
  return result;
}

// ---- report -----------------------------------------------------------------

function render(
  opts: Options,
  air: AirResult,
  alone: DovecotAlone,
  pushes: PushResult[],
  load: [number[], number[]],
  command: string,
  seconds: number,
): string {
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  const handsetTotal = air.handsetIn + air.handsetOut;
  const imapTotal = air.imapIn + air.imapOut;
  const ms = (v: number) => `${v.toFixed(1)} ms`;
  const la = (l: number[]) => l.map((x) => x.toFixed(1)).join(' / ');
  const push = pushes[0]!; // one per push mode, and there is always one
  const hook = pushes.find((p) => p.phase.name === 'hook')?.phase;
  const idle = pushes.find((p) => p.phase.name === 'idle')?.phase;
  const main = hook ?? idle!;
  const others = pushes.slice(1);
  const row = (label: string, s: number[], missed: number) =>
    `| ${label} | ${s.length} | ${missed} | ${ms(percentile(s, 50))} | ${ms(percentile(s, 90))} | ${ms(percentile(s, 99))} | ${ms(s.at(-1) ?? Number.NaN)} |`;
  const met = push.devices >= 1000 && percentile(main.samples, 99) <= 250 && main.missed === 0;
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return [
    '## Mail',
    '',
    `Run ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, Dovecot (private instance, maildir, no TLS), gateway = one \`mmgw start\` process (every role, in-process bus); handsets and the IMAP client run in the benchmark process. Command: \`${command}\` (${seconds.toFixed(0)} s).`,
    '',
    `### Bytes on the air: ${air.headers} INBOX headers + ${air.bodies} bodies`,
    '',
    `INBOX of 200 generated messages (${kb(air.inboxBytes)} in all: plain notes, newsletters with a large HTML alternative, HTML-only notifications, invoices with a PDF). Handset: one session with the Handset SDK's defaults (hello → welcome, \`mail.sync\` limit 200, which the SDK sends as \`compact: true\` and hands the application as \`items\`, 10 × \`mail.body\` with the default 16 KiB budget, close), WebSocket payload bytes counted at the client. IMAP: imapflow directly to Dovecot (login, SELECT, FETCH 1:* ENVELOPE FLAGS BODYSTRUCTURE RFC822.SIZE INTERNALDATE, the first 1 KiB of each text part for the preview as mmgw does, then for the 10 newest the part a mail client shows, HTML when present, else text; logout), socket bytes.`,
    '',
    '| client | down | up | total |',
    '| --- | ---: | ---: | ---: |',
    `| handset via mmgw (SDK default: header table on the wire) | ${kb(air.handsetIn)} | ${kb(air.handsetOut)} | ${kb(handsetTotal)} |`,
    `| handset via mmgw (\`compact: false\`: \`items\` on the wire) | | | ${kb(air.itemsTotal)} |`,
    `| imapflow → Dovecot | ${kb(air.imapIn)} | ${kb(air.imapOut)} | ${kb(imapTotal)} |`,
    '',
    `Of the bytes down, the header list took ${kb(air.handsetHeadersIn)} on the handset (${kb(air.itemsHeadersIn)} as \`items\`) and ${kb(air.imapHeadersIn)} over IMAP; the rest are the 10 bodies.`,
    '',
    `**Ratio: the handset moves ${(imapTotal / handsetTotal).toFixed(1)}× fewer bytes** with the SDK's default (target ≥ 5×); ${(imapTotal / air.itemsTotal).toFixed(1)}× with \`items\` on the wire.`,
    '',
    `### Push latency: APPEND on Dovecot → \`mail.new\` at the handset, ${push.devices} devices`,
    '',
    `${push.connected} of ${push.devices} handsets connected over WebSocket, each with its own Dovecot account (\`mail.account.add\`) and its INBOX watched (a \`mail.sync\` of INBOX starts IDLE on the transport), i.e. ${push.devices} IDLE connections plus ${push.devices} lingering request sessions (${push.imapProcesses} Dovecot imap processes at the end; the benchmark raises \`service imap { process_limit }\` and \`default_client_limit\` in the Dovecot config, and needs \`fs.inotify.max_user_instances\` above the process count, here ${readFileSync('/proc/sys/fs/inotify/max_user_instances', 'utf8').trim()}, else Dovecot's IDLE falls back to a 30 s poll). Setup (connect, add, sync, one warm-up push per device) took ${push.setupSeconds.toFixed(0)} s${others.map((o) => ` (${o.setupSeconds.toFixed(0)} s for the ${o.phase.name === 'idle' ? 'IDLE-alone' : 'second'} fleet)`).join('')}. Then samples, ${opts.concurrency} at a time, each to a device spread over the fleet: a newly logged-in IMAP client APPENDs to that device's INBOX; the clock runs from just before the APPEND to the handset's \`mail.new\`.${hook ? ` First with Dovecot's push_notification plugin calling the gateway's new-mail hook (docs/dovecot/README.md: Lua driver, \`POST /hooks/mail/new\`; IDLE stays on)${idle ? ', then IDLE alone: a second fresh gateway, Dovecot (without the plugin) and fleet of the same size, set up the same way' : ''}.` : ' IDLE alone (`--no-hook`).'} Gateway RSS at the end: ${pushes.map((p) => `${p.gatewayRssMb.toFixed(0)} MB`).join(', ')}.`,
    '',
    '| path | samples | missed | p50 | p90 | p99 | max |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...(hook ? [row('push hook (+ IDLE as fallback)', hook.samples, hook.missed)] : []),
    ...(idle ? [row('IMAP IDLE alone', idle.samples, idle.missed)] : []),
    '',
    `Dovecot alone, same run (its own instance, one IDLE-ing imapflow client, ${alone.exists.length} APPENDs): APPEND → untagged \`EXISTS\` p50 ${ms(percentile(alone.exists, 50))}, min ${ms(alone.exists[0] ?? Number.NaN)}, max ${ms(alone.exists.at(-1) ?? Number.NaN)}; APPEND → the hook's HTTP request at a plain listener p50 ${ms(percentile(alone.hook, 50))}, max ${ms(alone.hook.at(-1) ?? Number.NaN)}. Dovecot 2.3 holds an IDLE client's \`EXISTS\` back after a change (\`NOTIFY_DELAY_MSECS 500\` in src/lib-storage/mailbox-watch.c), which is the floor of every IDLE sample; the hook is called from the APPENDing process right after the commit. The gateway's own share: ${idle && idle.afterExists.length > 0 ? `on the IDLE path, measured per sample from the \`EXISTS\` at an observing IDLE client of the same user (its own Dovecot process, so it gets the same delayed notification as the gateway's watcher) to the handset's \`mail.new\` (FETCH of the header → bus → edge → WebSocket → SDK), p50 ${ms(percentile(idle.afterExists, 50))}, p90 ${ms(percentile(idle.afterExists, 90))}, p99 ${ms(percentile(idle.afterExists, 99))} (${idle.afterExists.length} samples; APPEND → that \`EXISTS\` p50 ${ms(percentile(idle.existsAfterAppend, 50))} in the fleet)` : ''}${hook && idle ? '; ' : ''}${hook ? `on the hook path about ${ms(percentile(hook.samples, 50) - percentile(alone.hook, 50))} at p50 (end to end minus Dovecot's APPEND → hook call above: a difference of medians, not a paired measurement)` : ''}.`,
    '',
    `Target: p99 ≤ 250 ms with 1,000 devices: ${met ? '**met**' : '**not met**'} (${hook ? 'with the push hook' : 'IDLE alone'}). Load average (1/5/15 min) at the start ${la(load[0])}, at the end ${la(load[1])}, on ${os.cpus().length} cores shared with other work.`,
    '',
  ].join('\n');
}

/** Replaces the "## Mail" section of RESULTS.md (or appends it); the other sections are other benchmarks'. */
function writeSection(path: string, section: string): void {
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    text = '# Benchmark results\n\n';
  }
  const start = text.search(/^## Mail\s*$/m);
  if (start < 0) {
    writeFileSync(path, `${text.replace(/\n*$/, '\n\n')}${section}`);
    return;
  }
  const rest = text.slice(start + 1);
  const nextHeading = rest.search(/^## /m);
  const end = nextHeading < 0 ? text.length : start + 1 + nextHeading;
  writeFileSync(path, `${text.slice(0, start)}${section}${nextHeading < 0 ? '' : '\n'}${text.slice(end)}`);
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  // Exit through process.exit so that the harnesses' exit hooks stop Dovecot and the gateway.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));
  // Each IDLE-ing Dovecot process takes an inotify instance (all run as one uid); past the limit
  // Dovecot silently falls back to polling every mailbox_idle_check_interval (30 s).
  const inotify = Number(readFileSync('/proc/sys/fs/inotify/max_user_instances', 'utf8'));
  if (inotify < opts.devices * 2 + 100) {
    console.warn(
      `fs.inotify.max_user_instances is ${inotify}: too low for ${opts.devices} IDLE-ing Dovecot processes; ` +
        `raise it (sysctl -w fs.inotify.max_user_instances=${opts.devices * 4}) or pushes wait for Dovecot's 30 s poll`,
    );
  }
  const t0 = performance.now();
  const loadBefore = os.loadavg();
  console.log('(b) Dovecot alone: APPEND → EXISTS at an IDLE client, APPEND → hook call');
  const alone = await dovecotAlone(40);
  console.log(
    `  EXISTS p50 ${percentile(alone.exists, 50).toFixed(1)} ms, hook p50 ${percentile(alone.hook, 50).toFixed(1)} ms`,
  );
  const modes: [PushPhase['name'], number][] = opts.hook
    ? [
        ['hook', opts.samples],
        ...(opts.idleSamples > 0 ? [['idle', opts.idleSamples] as [PushPhase['name'], number]] : []),
      ]
    : [['idle', opts.samples]];
  let air: AirResult | undefined;
  const pushes: PushResult[] = [];
  for (const [mode, count] of modes) {
    console.log(
      `(c) push latency with ${opts.devices} devices, ${mode === 'hook' ? 'push hook' : 'IDLE alone'}`,
    );
    const fleet = await withFleet(opts, mode === 'hook', async (gw, dovecot, devices) => {
      if (!air) {
        console.log('(a) bytes on the air');
        air = await bytesOnTheAir(gw, dovecot, devices[0]!);
        console.log(`  headers down: handset ${air.handsetHeadersIn} B, imapflow ${air.imapHeadersIn} B`);
        console.log(
          `  handset ${air.handsetIn + air.handsetOut} B (items form ${air.itemsTotal} B), imapflow ${air.imapIn + air.imapOut} B, ratio ${((air.imapIn + air.imapOut) / (air.handsetIn + air.handsetOut)).toFixed(1)}`,
        );
      }
      return pushLatency(gw, dovecot, devices.slice(1), opts, mode, count);
    });
    pushes.push(fleet);
  }
  const loadAfter = os.loadavg();
  const argv = process.argv.slice(2).join(' ');
  const section = render(
    opts,
    air!,
    alone,
    pushes,
    [loadBefore, loadAfter],
    `npm run bench:mail${argv ? ` -- ${argv}` : ''}`,
    (performance.now() - t0) / 1000,
  );
  if (opts.out) {
    writeSection(opts.out, section);
    console.log(`wrote the "## Mail" section of ${opts.out}`);
  } else console.log(`\n${section}`);
}

/**
 * A fresh gateway (with the hook token when `hook`), a private Dovecot (calling
 * that gateway's hook when `hook`) holding the INBOX of 200 for (a) and one
 * account per device, and `opts.devices + 1` provisioned devices; all stopped after `fn`.
 */
async function withFleet<T>(
  opts: Options,
  hook: boolean,
  fn: (gw: Gateway, dovecot: DovecotServer, devices: [string, string][]) => Promise<T>,
): Promise<T> {
  const users = [AIR, ...Array.from({ length: opts.devices }, (_, i) => user(i + 1))];
  // Two IMAP connections per device (IDLE watcher + request session), one process each.
  const imapProcesses = opts.devices * 2 + 200;
  const token = randomBytes(18).toString('hex');
  const dataDir = mkdtempSync(join(os.tmpdir(), 'mmgw-bench-mail-'));
  let gw: Gateway | undefined;
  let dovecot: DovecotServer | undefined;
  let stub: Awaited<ReturnType<typeof smtpStub>> | undefined;
  try {
    const devices = await provisionDevices(dataDir, opts.devices + 1);
    // The gateway first: Dovecot's config names its hook URL.
    gw = await startGateway({
      dataDir,
      env: { MMGW_LOG_LEVEL: 'warn', ...(hook ? { MMGW_MAIL_PUSH_TOKEN: token } : {}) },
    });
    dovecot = await startDovecot({
      users,
      startTimeoutMs: 60_000,
      ...(hook ? { pushHook: { url: `${gw.adminUrl}${MAIL_PUSH_PATH}`, token } } : {}),
      extraConfig: [
        `default_client_limit = ${imapProcesses + 1000}`,
        'service imap {',
        `  process_limit = ${imapProcesses}`,
        '}',
      ],
    });
    stub = await smtpStub();
    smtpStubPort = stub.port;
    const imap = await dovecot.connect(AIR.user);
    for (let i = 0; i < 200; i++) await imap.append('INBOX', benchMessage(i, AIR.user));
    await imap.logout();
    return await fn(gw, dovecot, devices);
  } finally {
    await gw?.stop();
    await stub?.stop();
    await dovecot?.stop({ removeDir: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
