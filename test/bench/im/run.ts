/**
 * `npm run bench:im`: the chat benchmark of issue 4, against a real gateway
 * process (`mmgw start`, every role), a private Prosody and real handsets
 * (the Handset SDK over WebSocket), compared in the same run with plain
 * @xmpp/client sessions straight to the same Prosody.
 *
 *  (a) Bytes on the air, counted as socket bytes both ways on each device's
 *      own TCP connection (a counting relay in front of the gateway's device
 *      port and in front of Prosody's c2s port):
 *      - per chat message: sender's plus receiver's link, N messages, ÷ N;
 *        every message a different sentence and every contact its own status
 *        line, the same in both arms (handsets compress their WebSocket
 *        frames by default, SPEC.md §4.4: a repeated text would flatter them).
 *        The direct clients behave like a common mobile client: each message
 *        carries origin-id, a receipt request and a chat state, the receiver
 *        answers the receipt; both use stream management (@xmpp/client).
 *      - a 500-contact roster coming online: one account with 500 mutual
 *        contacts; login + roster fetch, then the 500 contacts come online
 *        (each sends a presence with a status and entity capabilities, as
 *        real clients do), until the device knows all 500.
 *  (b) Relay throughput: M messages sender → Prosody → receiver, as fast as
 *      they go (the handset keeps a window of im.send requests in flight,
 *      the direct client sends without waiting); messages/s = M ÷ time to the
 *      last one at the receiver.
 *      - one pair (the first figure): one direct client pair vs one handset
 *        pair. One handset is held by the per-device frame limit below and by
 *        its window of im.send requests waiting for the server's ack.
 *      - K pairs at once (--pairs, the answer to "is the gateway the
 *        bottleneck?"): K direct client pairs vs K handset pairs, the same M
 *        messages split over the pairs, one unmeasured warm-up round per
 *        arm, then rounds in ABBA order (direct, gateway, gateway, direct)
 *        against the same Prosody. Each handset
 *        paces its requests to 80 % of the gateway's per-device limit, so no
 *        handset is over the policy. Per round: the aggregate rate, each
 *        pair's own rate, and CPU seconds of Prosody, the gateway (process
 *        tree) and this load process, read from /proc and process.cpuUsage().
 *        Direct clients of this arm connect straight to Prosody (no counting
 *        relay), handsets straight to the gateway.
 *
 * The edge limits a device to 50 frames/s by default (burst 200); one im.send
 * is one Request frame, so a single handset sending flat out is cut off by
 * that policy long before the relay itself is busy. --device-fps raises it
 * for the run (edge.limits.maxFramesPerSecond, burst 4×) to measure the relay.
 *
 *   npm run bench:im -- [--contacts 500] [--messages 100] [--relay 2000] [--window 64] [--pairs 20] [--device-fps N] [--gw-cpu-prof DIR] [--smoke] [--out FILE | --no-write]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { type XmppClient, xml } from '@xmpp/client';
import WebSocket from 'ws';
import { Handset } from '../../../device-protocol/handset.ts';
import { applyScramSpeedup } from '../../../server/transport/im/xmpp/scram-speedup.ts';
import { type Gateway, startGateway } from '../../harness/gateway.ts';
import { cloneAccounts, plainXmppClient, startProsody } from '../../harness/prosody.ts';
import { provisionDevices } from '../edge/provision.ts';

// Hundreds of direct logins: the same native PBKDF2 the gateway uses, so the bench is not CPU-bound on SCRAM.
applyScramSpeedup();

interface Options {
  contacts: number;
  messages: number;
  relay: number;
  window: number;
  /** Sender→receiver pairs in the parallel relay arms. */
  pairs: number;
  /** Directory for a V8 CPU profile of the gateway process (node --cpu-prof), written when it stops. */
  gwCpuProf: string | undefined;
  /** edge.limits.maxFramesPerSecond (and burst) of the gateway; default: the gateway's default. */
  deviceFps: number | undefined;
  out: string | undefined;
}

const RESULTS = fileURLToPath(new URL('../RESULTS.md', import.meta.url));
const DOMAIN = 'example.test';
const PW = 'bench-pw';
const WAIT_MS = 180_000;

function parseArgs(argv: string[]): Options {
  const o: Options = {
    contacts: 500,
    messages: 100,
    relay: 2000,
    window: 64,
    pairs: 20,
    gwCpuProf: undefined,
    deviceFps: undefined,
    out: RESULTS,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${a} needs a positive integer`);
      return n;
    };
    if (a === '--contacts') o.contacts = num();
    else if (a === '--messages') o.messages = num();
    else if (a === '--relay') o.relay = num();
    else if (a === '--window') o.window = num();
    else if (a === '--pairs') o.pairs = num();
    else if (a === '--device-fps') o.deviceFps = num();
    else if (a === '--gw-cpu-prof') o.gwCpuProf = argv[++i];
    else if (a === '--out') o.out = argv[++i];
    else if (a === '--no-write') o.out = undefined;
    else if (a === '--smoke')
      Object.assign(o, { contacts: 20, messages: 10, relay: 100, pairs: 4, out: undefined });
    else throw new Error(`unknown flag ${a}`);
  }
  return o;
}

/**
 * `n` different chat lines of 50–60 characters, the same every run: words
 * drawn from a 200-word vocabulary by a fixed-seed generator.
 */
function chatTexts(n: number): string[] {
  const words = (
    'the of and to in is you that it he was for on are as with his they at be this have from or one had by ' +
    'word but not what all were we when your can said there use an each which she do how their if will up ' +
    'other about out many then them these so some her would make like him into time has look two more write ' +
    'go see number no way could people my than first water been call who oil its now find long down day did ' +
    'get come made may part over new sound take only little work know place year live me back give most very ' +
    'after thing our just name good sentence man think say great where help through much before line right ' +
    'too mean old any same tell boy follow came want show also around form three small set put end does ' +
    'another well large must big even such because turn here why ask went men read need land different home ' +
    'us move try kind hand picture again change off play spell air away animal house point page letter mother'
  ).split(' ');
  let state = 20261204;
  const next = () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
  const out: string[] = [];
  while (out.length < n) {
    let line = '';
    while (line.length < 50) line += `${line === '' ? '' : ' '}${words[Math.floor(next() * words.length)]}`;
    out.push(`${line[0]!.toUpperCase()}${line.slice(1, 59)}.`);
  }
  return out;
}

async function waitFor(what: string, cond: () => boolean, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A TCP relay that counts the bytes of every connection through it, both ways. */
class CountingRelay {
  up = 0;
  down = 0;
  port = 0;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  constructor(upstreamPort: number) {
    this.#server = createServer((c) => {
      const u = createConnection(upstreamPort, '127.0.0.1');
      c.setNoDelay(true);
      u.setNoDelay(true);
      this.#sockets.add(c).add(u);
      c.on('data', (d: Buffer) => {
        this.up += d.length;
        u.write(d);
      });
      u.on('data', (d: Buffer) => {
        this.down += d.length;
        c.write(d);
      });
      const end = () => {
        c.destroy();
        u.destroy();
        this.#sockets.delete(c);
        this.#sockets.delete(u);
      };
      c.on('close', end).on('error', end);
      u.on('close', end).on('error', end);
    });
  }
  get total(): number {
    return this.up + this.down;
  }
  reset(): void {
    this.up = 0;
    this.down = 0;
  }
  async start(): Promise<this> {
    await new Promise<void>((r) => this.#server.listen(0, '127.0.0.1', r));
    this.port = (this.#server.address() as { port: number }).port;
    return this;
  }
  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}

const contactName = (i: number) => `c${String(i).padStart(4, '0')}`;

/** The presence a common mobile client sends: show, status, priority and entity capabilities. */
const clientPresence = (status: string) =>
  xml(
    'presence',
    {},
    xml('show', {}, 'chat'),
    xml('status', {}, status),
    xml('priority', {}, '0'),
    xml('c', {
      xmlns: 'http://jabber.org/protocol/caps',
      hash: 'sha-1',
      node: 'https://conversations.im',
      ver: 'hNlGx1WbQ4D2Ui0t7FiVTa2gm3U=',
    }),
  );

const direct = (port: number, user: string, resource: string): Promise<XmppClient> =>
  plainXmppClient({ port, domain: DOMAIN, user, password: PW, resource });

/** Counts the chat messages a direct client receives and, as a good citizen, answers receipt requests (XEP-0184). */
function receiveChats(c: XmppClient, counted: () => void): void {
  c.on('stanza', (el) => {
    if (!el.is('message') || !el.getChild('body')) return;
    counted();
    if (el.getChild('request', 'urn:xmpp:receipts')) {
      void c.send(
        xml(
          'message',
          { to: el.attrs.from, id: `r-${el.attrs.id}` },
          xml('received', { xmlns: 'urn:xmpp:receipts', id: el.attrs.id }),
        ),
      );
    }
  });
}

function handsetOn(url: string, dev: { imei: string; secret: string }): Handset {
  return new Handset({
    url,
    imei: dev.imei,
    secret: dev.secret,
    transport: 'ws',
    WebSocket,
    client: 'mmgw-bench-im/1',
    requestTimeoutMs: 60_000,
  });
}

/** Linux USER_HZ: the unit of utime/stime in /proc/<pid>/stat (100 on every mainstream kernel build). */
const CLOCK_TICKS = 100;

/** CPU seconds (user + system) so far of a process and every live descendant of it, from /proc. */
function cpuSecondsOfTree(root: number): number {
  const procs = new Map<number, { ppid: number; ticks: number }>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      // Fields after "(comm)": state ppid … utime(14th) stime(15th); comm may hold spaces.
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      procs.set(Number(d), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      // gone meanwhile
    }
  }
  let ticks = 0;
  const todo = [root];
  while (todo.length > 0) {
    const pid = todo.pop()!;
    ticks += procs.get(pid)?.ticks ?? 0;
    for (const [child, p] of procs) if (p.ppid === pid) todo.push(child);
  }
  return ticks / CLOCK_TICKS;
}

/** This (load) process: every thread, in seconds. */
const selfCpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** A token bucket on the sending side, so that a handset stays under the edge's per-device frame limit. */
class Pacer {
  #tokens: number;
  #at = performance.now();
  constructor(
    readonly perSecond: number,
    readonly burst: number,
  ) {
    this.#tokens = burst;
  }
  async take(): Promise<void> {
    for (;;) {
      const now = performance.now();
      this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) * this.perSecond) / 1000);
      this.#at = now;
      if (this.#tokens >= 1) {
        this.#tokens--;
        return;
      }
      await new Promise((r) => setTimeout(r, ((1 - this.#tokens) * 1000) / this.perSecond));
    }
  }
}

function machine(): string[] {
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  const prosodyVersion = (
    spawnSync('dpkg-query', ['-W', 'prosody'], { encoding: 'utf8' }).stdout.split('\t')[1] ?? ''
  ).trim();
  return [
    `- date: ${new Date().toISOString()}`,
    `- command: \`npm run bench:im${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\``,
    `- nproc: ${os.cpus().length} (${cpu}); memory: ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB; node ${process.version}; prosody ${prosodyVersion || '?'}`,
    `- load average at the end (1/5/15 min): ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' / ')} — other benchmarks shared the 2 cores; throughput is the figure this hurts most`,
  ];
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const contacts = Array.from({ length: o.contacts }, (_, i) => contactName(i));
  const mutual = (jid: string) => ({ jid: `${jid}@${DOMAIN}`, subscription: 'both' as const });
  const rosters: Record<string, Array<ReturnType<typeof mutual>>> = {
    big: contacts.map(mutual),
    big2: contacts.map(mutual),
    alice: [mutual('bob')],
    bob: [mutual('alice')],
    carol: [mutual('dave')],
    dave: [mutual('carol')],
  };
  for (const c of contacts) rosters[c] = [mutual('big'), mutual('big2')];
  // The K-pair relay: direct senders ds<i> → receivers dr<i>, handset senders hs<i> → receivers hr<i>.
  const pairUsers: string[] = [];
  for (let i = 0; i < o.pairs; i++) {
    for (const [a, b] of [
      [`ds${i}`, `dr${i}`],
      [`hs${i}`, `hr${i}`],
    ] as const) {
      rosters[a] = [mutual(b)];
      rosters[b] = [mutual(a)];
      pairUsers.push(a, b);
    }
  }
  console.log(`starting Prosody with ${o.contacts} contacts …`);
  const prosody = await startProsody({
    domain: DOMAIN,
    users: ['big', 'big2', 'alice', 'bob', 'carol', 'dave', contacts[0]!].map((user) => ({
      user,
      password: PW,
    })),
    rosters,
  });
  cloneAccounts(prosody, contacts[0]!, [...contacts.slice(1), ...pairUsers]);
  const gwConfig = join(prosody.dir, 'gw.json');
  const limits = o.deviceFps ? { maxFramesPerSecond: o.deviceFps, burstFrames: o.deviceFps * 4 } : {};
  writeFileSync(gwConfig, JSON.stringify({ edge: { limits } }));
  // Devices written through the registry's import path before the gateway opens the data directory.
  const dataDir = mkdtempSync(join(os.tmpdir(), 'mmgw-bench-im-'));
  const devices = (await provisionDevices(dataDir, 3 + 2 * o.pairs)).map(([imei, secret]) => ({
    imei,
    secret,
  }));
  const gw: Gateway = await startGateway({
    dataDir,
    args: ['--config', gwConfig],
    env: { MMGW_LOG_LEVEL: 'warn' },
    ...(o.gwCpuProf ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', o.gwCpuProf] } : {}),
  });
  const xmppRelay = await new CountingRelay(prosody.c2sPort).start();
  const gwRelay = await new CountingRelay(gw.devicePort).start();
  const gwUrl = `ws://127.0.0.1:${gwRelay.port}`;
  const cleanup: Array<() => Promise<unknown>> = [];
  const rows: string[][] = [];
  try {
    const [devBig, devCarol, devDave] = devices as [
      (typeof devices)[0],
      (typeof devices)[0],
      (typeof devices)[0],
    ];
    const login = (h: Handset, user: string) =>
      h.request<any>('im.login', {
        jid: `${user}@${DOMAIN}`,
        password: PW,
        host: prosody.host,
        port: prosody.c2sPort,
      });

    // ---- (a) roster coming online ----------------------------------------
    // Two accounts with the same roster: 'big' on a direct client, 'big2' on a handset.
    console.log('roster: login + roster fetch …');
    xmppRelay.reset();
    const bigDirect = await direct(xmppRelay.port, 'big', 'phone');
    cleanup.push(() => bigDirect.stop());
    const directPresence = new Set<string>();
    bigDirect.on('stanza', (el) => {
      if (el.is('presence') && !el.attrs.type) directPresence.add(String(el.attrs.from).split('/')[0]!);
    });
    const roster = await bigDirect.iqCaller.get(xml('query', { xmlns: 'jabber:iq:roster' }));
    if (roster?.getChildren('item').length !== o.contacts) throw new Error('direct roster incomplete');
    await bigDirect.send(clientPresence('on the bench'));
    await new Promise((r) => setTimeout(r, 500));
    const directLoginBytes = xmppRelay.total;

    gwRelay.reset();
    const bigHandset = handsetOn(gwUrl, devBig);
    cleanup.push(() => bigHandset.close());
    const handsetPresence = new Set<string>();
    bigHandset.on('event', (e) => {
      if (e.name !== 'im.presence') return;
      for (const item of (e.body as any).items)
        if (item.show !== 'unavailable') handsetPresence.add(item.jid);
    });
    await bigHandset.connect();
    const acc = (await login(bigHandset, 'big2')).account as string;
    const hRoster = await bigHandset.request<any>('im.roster', { account: acc });
    if (hRoster.items.length !== o.contacts) throw new Error('handset roster incomplete');
    await new Promise((r) => setTimeout(r, 500));
    const handsetLoginBytes = gwRelay.total;

    console.log(`roster: ${o.contacts} contacts come online …`);
    xmppRelay.reset();
    gwRelay.reset();
    const contactClients: XmppClient[] = [];
    // Each contact its own status line (as people write them), the same in both arms.
    const statuses = chatTexts(contacts.length).map((t) => t.slice(0, 24).trim());
    for (let i = 0; i < contacts.length; i += 25) {
      const batch = await Promise.all(
        contacts.slice(i, i + 25).map((c) => direct(prosody.c2sPort, c, 'phone')),
      );
      for (const [k, c] of batch.entries()) await c.send(clientPresence(statuses[i + k]!));
      contactClients.push(...batch);
    }
    cleanup.push(() => Promise.all(contactClients.map((c) => c.stop().catch(() => {}))));
    await waitFor('direct client sees every contact', () => directPresence.size >= o.contacts);
    await waitFor('handset sees every contact', () => handsetPresence.size >= o.contacts);
    // Let acks and trailing batches settle before reading the counters.
    await new Promise((r) => setTimeout(r, 1500));
    const directPresenceBytes = xmppRelay.total;
    const handsetPresenceBytes = gwRelay.total;
    await bigDirect.stop();
    await bigHandset.close();

    // ---- (a) per chat message ------------------------------------------------
    console.log(`messages: ${o.messages} each way …`);
    xmppRelay.reset();
    const alice = await direct(xmppRelay.port, 'alice', 'phone');
    const bob = await direct(xmppRelay.port, 'bob', 'phone');
    cleanup.push(
      () => alice.stop(),
      () => bob.stop(),
    );
    let bobGot = 0;
    receiveChats(bob, () => bobGot++);
    await alice.send(xml('presence', {}));
    await bob.send(xml('presence', {}));
    await new Promise((r) => setTimeout(r, 500));
    const chat = (to: string, id: string, body: string) =>
      xml(
        'message',
        { type: 'chat', to, id },
        xml('body', {}, body),
        xml('origin-id', { xmlns: 'urn:xmpp:sid:0', id }),
        xml('request', { xmlns: 'urn:xmpp:receipts' }),
        xml('active', { xmlns: 'http://jabber.org/protocol/chatstates' }),
      );
    // Every message a different sentence (the same list in both arms): a link that compresses
    // must not gain from seeing one text again and again.
    const texts = chatTexts(o.messages);
    xmppRelay.reset();
    for (const [i, text] of texts.entries()) {
      await alice.send(chat(`bob@${DOMAIN}`, `m-${i}-${Date.now().toString(36)}`, text));
      await waitFor('bob gets the message', () => bobGot >= i + 1);
    }
    await new Promise((r) => setTimeout(r, 1500));
    const directMsgBytes = xmppRelay.total / o.messages;

    const carolH = handsetOn(gwUrl, devCarol);
    const daveH = handsetOn(gwUrl, devDave);
    cleanup.push(
      () => carolH.close(),
      () => daveH.close(),
    );
    await carolH.connect();
    await daveH.connect();
    const carolAcc = (await login(carolH, 'carol')).account as string;
    await login(daveH, 'dave');
    let daveGot = 0;
    daveH.on('event', (e) => {
      if (e.name === 'im.message' && (e.body as any).direction === 'in') daveGot++;
    });
    await new Promise((r) => setTimeout(r, 1500));
    gwRelay.reset();
    for (const [i, text] of texts.entries()) {
      await carolH.request('im.send', {
        account: carolAcc,
        to: `dave@${DOMAIN}`,
        body: text,
        clientId: `h-${i}-${Date.now().toString(36)}`,
      });
      await waitFor('dave gets the message', () => daveGot >= i + 1);
    }
    await new Promise((r) => setTimeout(r, 1500));
    const handsetMsgBytes = gwRelay.total / o.messages;

    // ---- (b) relay throughput -------------------------------------------------
    console.log(`relay: ${o.relay} messages direct …`);
    bobGot = 0;
    let t0 = performance.now();
    for (let i = 0; i < o.relay; i++) void alice.send(chat(`bob@${DOMAIN}`, `t-${i}`, `relay ${i}`));
    await waitFor('bob gets every relayed message', () => bobGot >= o.relay);
    const directRate = o.relay / ((performance.now() - t0) / 1000);

    console.log(`relay: ${o.relay} messages through the gateway (window ${o.window}) …`);
    daveGot = 0;
    t0 = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: o.window }, async () => {
        while (next < o.relay) {
          const i = next++;
          await carolH.request('im.send', {
            account: carolAcc,
            to: `dave@${DOMAIN}`,
            body: `relay ${i}`,
            clientId: `ht-${i}-${Date.now().toString(36)}`,
          });
        }
      }),
    );
    const sentAt = performance.now() - t0;
    await waitFor('dave gets every relayed message', () => daveGot >= o.relay);
    console.log(
      `  all im.sent after ${Math.round(sentAt)} ms, all at the receiver after ${Math.round(performance.now() - t0)} ms`,
    );
    const gwRate = o.relay / ((performance.now() - t0) / 1000);

    // ---- (b) relay throughput, K pairs at once, ABBA --------------------------
    const K = o.pairs;
    console.log(`relay: ${K} pairs, connecting …`);
    const share = (i: number) => Math.floor(o.relay / K) + (i < o.relay % K ? 1 : 0);
    const dSenders: XmppClient[] = [];
    const dReceivers: XmppClient[] = [];
    let directDrops = 0;
    const dGot = new Array<number>(K).fill(0);
    for (let i = 0; i < K; i++) {
      // One after the other: a contact's presence arriving while @xmpp/client is still enabling
      // stream management confuses its ack counter (Prosody then ends the stream).
      const snd = await direct(prosody.c2sPort, `ds${i}`, 'phone');
      const rcv = await direct(prosody.c2sPort, `dr${i}`, 'phone');
      cleanup.push(
        () => snd.stop(),
        () => rcv.stop(),
      );
      for (const c of [snd, rcv]) {
        c.on('disconnect', (e: { clean?: boolean }) => {
          if (!e?.clean) directDrops++;
        });
        c.on('error', (e: Error) => console.log(`  direct client ${i}: ${e.message}`));
      }
      receiveChats(rcv, () => dGot[i]!++);
      dSenders.push(snd);
      dReceivers.push(rcv);
    }
    for (const c of [...dSenders, ...dReceivers]) await c.send(xml('presence', {}));
    await new Promise((r) => setTimeout(r, 500));
    const fps = o.deviceFps ?? 50;
    const hSenders: Array<{ h: Handset; account: string; pacer: Pacer }> = [];
    const hGot = new Array<number>(K).fill(0);
    let handsetDrops = 0;
    for (let i = 0; i < K; i++) {
      const snd = handsetOn(gw.url, devices[3 + 2 * i]!);
      const rcv = handsetOn(gw.url, devices[4 + 2 * i]!);
      cleanup.push(
        () => snd.close(),
        () => rcv.close(),
      );
      for (const h of [snd, rcv]) h.on('disconnected', () => handsetDrops++);
      rcv.on('event', (e) => {
        if (e.name === 'im.message' && (e.body as any).direction === 'in') hGot[i]!++;
      });
      await Promise.all([snd.connect(), rcv.connect()]);
      const [a] = await Promise.all([login(snd, `hs${i}`), login(rcv, `hr${i}`)]);
      hSenders.push({ h: snd, account: a.account as string, pacer: new Pacer(fps * 0.8, fps * 4 * 0.8) });
    }
    await new Promise((r) => setTimeout(r, 1500));
    handsetDrops = 0;
    directDrops = 0;

    interface Round {
      arm: 'direct' | 'gateway';
      seconds: number;
      pairRates: number[];
      cpu: { prosody: number; gateway: number; load: number };
      load1: number;
    }
    const rounds: Round[] = [];
    // One unmeasured warm-up round per arm first (JIT, first archive writes), then ABBA.
    const order = [
      ['direct', false],
      ['gateway', false],
      ['direct', true],
      ['gateway', true],
      ['gateway', true],
      ['direct', true],
    ] as const;
    for (const [r, [arm, measured]] of order.entries()) {
      console.log(
        `relay: ${measured ? 'round' : 'warm-up'} ${r + 1}, ${arm}, ${o.relay} messages over ${K} pairs …`,
      );
      const got = arm === 'direct' ? dGot : hGot;
      got.fill(0);
      const cpu0 = {
        prosody: cpuSecondsOfTree(prosody.pid),
        gateway: cpuSecondsOfTree(gw.pid),
        load: selfCpuSeconds(),
      };
      const t0 = performance.now();
      const doneAt = await Promise.all(
        Array.from({ length: K }, async (_, i) => {
          const n = share(i);
          if (arm === 'direct') {
            const snd = dSenders[i]!;
            for (let j = 0; j < n; j++)
              snd.send(chat(`dr${i}@${DOMAIN}`, `k${r}-${i}-${j}`, `relay ${j}`)).catch(() => {});
          } else {
            const { h, account, pacer } = hSenders[i]!;
            let next = 0;
            await Promise.all(
              Array.from({ length: Math.min(o.window, n) }, async () => {
                while (next < n) {
                  const j = next++;
                  await pacer.take();
                  await h.request('im.send', {
                    account,
                    to: `hr${i}@${DOMAIN}`,
                    body: `relay ${j}`,
                    clientId: `k${r}-${i}-${j}-${Date.now().toString(36)}`,
                  });
                }
              }),
            );
          }
          await waitFor(`pair ${i} gets every message`, () => got[i]! >= n);
          return performance.now() - t0;
        }),
      );
      const seconds = Math.max(...doneAt) / 1000;
      if (!measured) {
        console.log(`  ${Math.round(o.relay / seconds)} messages/s (warm-up, not counted)`);
        await new Promise((res) => setTimeout(res, 2000));
        continue;
      }
      rounds.push({
        arm,
        seconds,
        pairRates: doneAt.map((ms, i) => share(i) / (ms / 1000)),
        cpu: {
          prosody: cpuSecondsOfTree(prosody.pid) - cpu0.prosody,
          gateway: cpuSecondsOfTree(gw.pid) - cpu0.gateway,
          load: selfCpuSeconds() - cpu0.load,
        },
        load1: os.loadavg()[0]!,
      });
      console.log(
        `  ${Math.round(o.relay / seconds)} messages/s; CPU s: prosody ${rounds.at(-1)!.cpu.prosody.toFixed(2)}, gateway ${rounds.at(-1)!.cpu.gateway.toFixed(2)}, load ${rounds.at(-1)!.cpu.load.toFixed(2)}`,
      );
      // Let receipts, acks and archive writes of this round settle before the next.
      await new Promise((res) => setTimeout(res, 2000));
    }
    const armOf = (arm: Round['arm']) => {
      const rs = rounds.filter((x) => x.arm === arm);
      const seconds = rs.reduce((a, x) => a + x.seconds, 0);
      const pair = rs.flatMap((x) => x.pairRates).sort((a, b) => a - b);
      const cpu = (k: keyof Round['cpu']) => rs.reduce((a, x) => a + x.cpu[k], 0);
      return {
        rate: (rs.length * o.relay) / seconds,
        pairMedian: pair[Math.floor(pair.length / 2)]!,
        pairMin: pair[0]!,
        seconds,
        cpu: { prosody: cpu('prosody'), gateway: cpu('gateway'), load: cpu('load') },
        rounds: rs,
      };
    };
    const kd = armOf('direct');
    const kg = armOf('gateway');

    const f = (n: number) => Math.round(n).toLocaleString('en-US');
    const r = (a: number, b: number) => (a / b).toFixed(2);
    rows.push(
      [
        'bytes per chat message (sender + receiver link)',
        f(handsetMsgBytes),
        f(directMsgBytes),
        `${r(directMsgBytes, handsetMsgBytes)}× fewer`,
      ],
      [
        `bytes: login + roster fetch, ${o.contacts} contacts`,
        f(handsetLoginBytes),
        f(directLoginBytes),
        `${r(directLoginBytes, handsetLoginBytes)}× fewer`,
      ],
      [
        `bytes: ${o.contacts} contacts coming online (presence)`,
        f(handsetPresenceBytes),
        f(directPresenceBytes),
        `${r(directPresenceBytes, handsetPresenceBytes)}× fewer`,
      ],
      [
        `bytes: roster coming online, total`,
        f(handsetLoginBytes + handsetPresenceBytes),
        f(directLoginBytes + directPresenceBytes),
        `${r(directLoginBytes + directPresenceBytes, handsetLoginBytes + handsetPresenceBytes)}× fewer`,
      ],
      [
        `relay throughput, ${K} pairs at once, aggregate messages/s (${o.relay} messages per round, 2 rounds per arm, ABBA)`,
        f(kg.rate),
        f(kd.rate),
        `**${r(kg.rate, kd.rate)}** (gateway ÷ direct)`,
      ],
      [
        `relay throughput, ${K} pairs: per pair messages/s, median (slowest)`,
        `${f(kg.pairMedian)} (${f(kg.pairMin)})`,
        `${f(kd.pairMedian)} (${f(kd.pairMin)})`,
        r(kg.pairMedian, kd.pairMedian),
      ],
      [
        `relay, ${K} pairs: CPU s per 1,000 messages — Prosody`,
        ((kg.cpu.prosody / (2 * o.relay)) * 1000).toFixed(2),
        ((kd.cpu.prosody / (2 * o.relay)) * 1000).toFixed(2),
        '',
      ],
      [
        `relay, ${K} pairs: CPU s per 1,000 messages — gateway process`,
        ((kg.cpu.gateway / (2 * o.relay)) * 1000).toFixed(2),
        `(idle: ${((kd.cpu.gateway / (2 * o.relay)) * 1000).toFixed(2)})`,
        '',
      ],
      [
        `relay, ${K} pairs: CPU s per 1,000 messages — load process (handsets / direct clients)`,
        ((kg.cpu.load / (2 * o.relay)) * 1000).toFixed(2),
        ((kd.cpu.load / (2 * o.relay)) * 1000).toFixed(2),
        '',
      ],
      [
        `relay throughput, ONE pair (old figure), messages/s (${o.relay} messages, window ${o.window}, device limit ${o.deviceFps ?? 'default 50'} frames/s)`,
        f(gwRate),
        f(directRate),
        `${r(gwRate, directRate)} (gateway ÷ direct)`,
      ],
    );
    const roundLines = rounds.map(
      (x, i) =>
        `| ${i + 1} | ${x.arm} | ${f(o.relay / x.seconds)} | ${x.cpu.prosody.toFixed(2)} | ${x.cpu.gateway.toFixed(2)} | ${x.cpu.load.toFixed(2)} | ${(x.cpu.prosody + x.cpu.gateway + x.cpu.load).toFixed(2)} / ${(x.seconds * os.cpus().length).toFixed(2)} | ${x.load1.toFixed(1)} |`,
    );
    const table = [
      '| figure | handset via gateway | direct XMPP client | ratio |',
      '| --- | ---: | ---: | ---: |',
      ...rows.map((row) => `| ${row.join(' | ')} |`),
    ];
    const section = [
      '## IM',
      '',
      'Measured by `npm run bench:im` (test/bench/im/run.ts): a gateway process (every role, in-process bus),',
      'a private Prosody, handsets over WebSocket vs. plain @xmpp/client sessions to the same Prosody, same run.',
      'Bytes: socket bytes both ways on the device link (counting TCP relays), setup excluded except in the login row.',
      'Direct client messages carry origin-id, receipt request and chat state, the receiver answers receipts;',
      'contacts send presence with show, status, priority and caps. Every message is a different sentence and every',
      'contact has its own status line, the same in both arms. Handsets use the SDK defaults: compact IM forms (SPEC §9)',
      'and frame compression on the WebSocket (SPEC §4.4). Targets: ≥ 5× fewer bytes, throughput ratio ≥ 0.8.',
      '',
      ...machine(),
      '',
      ...table,
      '',
      `Relay rounds with ${K} pairs, after one unmeasured warm-up round per arm (disconnects during them: handsets ${handsetDrops}, direct clients ${directDrops}; each handset paced to`,
      `${Math.round(fps * 0.8)} requests/s, burst ${Math.round(fps * 4 * 0.8)}, under the per-device limit of ${fps} frames/s, burst ${fps * 4}).`,
      'Prosody is one thread (≤ 1 core). Direct rounds: Prosody + the load process on 2 cores; gateway rounds:',
      `Prosody + gateway + the load process (which runs ${2 * K} handsets) share the same 2 cores.`,
      '',
      '| round | arm | messages/s | CPU s Prosody | CPU s gateway | CPU s load | CPU s total / available | load avg 1 min |',
      '| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...roundLines,
      '',
    ].join('\n');
    console.log(`\n${section}`);
    if (o.out) {
      const old = readFileSync(o.out, 'utf8');
      const start = old.indexOf('\n## IM\n');
      let updated: string;
      if (start < 0) updated = `${old.trimEnd()}\n\n${section}`;
      else {
        const end = old.indexOf('\n## ', start + 6);
        updated = `${old.slice(0, start + 1)}${section}${end < 0 ? '' : old.slice(end)}`;
      }
      writeFileSync(o.out, updated);
      console.log(`written to ${o.out}`);
    }
  } finally {
    for (const c of cleanup.reverse()) await c().catch(() => {});
    await gwRelay.stop();
    await xmppRelay.stop();
    await gw.stop();
    await prosody.stop();
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
