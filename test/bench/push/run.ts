/**
 * `npm run bench:push` (issue 14): wake-ups of devices without a carrier.
 *
 * This process runs the local Web Push service (test/harness/push-service.ts:
 * HTTPS on loopback, every VAPID JWT verified and every payload decrypted, as
 * in the tests) and records when each request arrives; sender.ts, forked with
 * NODE_EXTRA_CA_CERTS naming the service's CA, runs the transport's wake-up
 * service fed as the transport role feeds it. Two processes: the sending side
 * and the push service each get a core (the machine has two), and neither's
 * CPU hides in the other's figures.
 *
 * Phases, on the same N registered devices (registered through push.register):
 * 1. anchor: `web-push`'s own sendNotification of the same payload to every
 *    subscription, a keep-alive agent, `--in-flight` at once: what the library
 *    and this push service do without the gateway;
 * 2. paced: a mail.new for every device at `--rate` per second, each held for
 *    a detached session: latency from the event to the request's arrival at
 *    the push service, p50/p99; does p99 ≤ 1 s hold at that rate;
 * 3. burst: a mail.new for every device at once: throughput, latency, memory;
 * 4. chats: `--chats` messages to each of `--chat-devices` devices within the
 *    coalescing interval: wake-ups sent per event.
 *
 * Writes its section of test/bench/RESULTS.md (between the bench:push
 * markers; `--no-write` prints it). `--smoke`: 500 devices, a quick
 * self-check of the benchmark itself.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { type PushService, startPushService } from '../../harness/push-service.ts';
import type { PhaseAnswer, SenderCommand, Subscription, Usage } from './sender.ts';

interface Options {
  devices: number;
  rate: number;
  inFlight: number;
  chatDevices: number;
  chats: number;
  intervalMs: number;
  smoke: boolean;
  write: boolean;
  out: string;
}

const RESULTS = fileURLToPath(new URL('../RESULTS.md', import.meta.url));
const BEGIN = '<!-- bench:push begin: written by test/bench/push/run.ts -->';
const END = '<!-- bench:push end -->';

function parseArgs(argv: string[]): Options {
  const smoke = argv.includes('--smoke');
  const o: Options = {
    devices: smoke ? 500 : 10_000,
    rate: 1000,
    inFlight: 64,
    chatDevices: smoke ? 100 : 1000,
    chats: 10,
    intervalMs: smoke ? 1500 : 5000,
    smoke,
    write: !argv.includes('--no-write') && !smoke,
    out: RESULTS,
  };
  const num = (flag: string) => {
    const i = argv.indexOf(flag);
    if (i < 0) return undefined;
    const v = Number(argv[i + 1]);
    if (!Number.isFinite(v) || v <= 0) throw new Error(`${flag} wants a positive number`);
    return v;
  };
  o.devices = num('--devices') ?? o.devices;
  o.rate = num('--rate') ?? o.rate;
  o.inFlight = num('--in-flight') ?? o.inFlight;
  o.chatDevices = Math.min(o.devices, num('--chat-devices') ?? o.chatDevices);
  o.chats = num('--chats') ?? o.chats;
  o.intervalMs = num('--interval-ms') ?? o.intervalMs;
  const out = argv.indexOf('--out');
  if (out >= 0) o.out = argv[out + 1] ?? RESULTS;
  return o;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Talks to sender.ts: one command at a time, its answer. */
function senderLink(child: ChildProcess) {
  const waiting: ((m: any) => void)[] = [];
  child.on('message', (m) => waiting.shift()?.(m));
  const next = () =>
    new Promise<any>((resolve, reject) => {
      waiting.push((m) => (m?.error ? reject(new Error(m.error)) : resolve(m)));
      child.once('exit', (code) => reject(new Error(`sender exited (${code})`)));
    });
  return {
    ready: next(),
    ask<T>(cmd: SenderCommand): Promise<T> {
      const answer = next();
      child.send(cmd);
      return answer as Promise<T>;
    },
  };
}

interface PhaseResult {
  name: string;
  events: number;
  wakeups: number;
  /** Event → arrival at the push service, ms, sorted (first arrival per device). */
  latency: number[];
  /** Wake-ups accepted per second: arrivals over first event → last arrival. */
  perSecond: number;
  wallMs: number;
  sender: Usage;
  serviceCpuSeconds: number;
  failed: number;
}

function collect(
  name: string,
  kind: 'mail' | 'chat',
  push: PushService,
  from: number,
  byEndpoint: Map<string, number>,
  a: PhaseAnswer,
  serviceCpuSeconds: number,
): PhaseResult {
  const got = push.received.slice(from).filter((r) => (r.payload as { kind?: string })?.kind === kind);
  const first = new Map<number, number>();
  let last = a.startedAt;
  for (const r of got) {
    const i = byEndpoint.get(r.endpoint);
    if (i === undefined) continue;
    if (!first.has(i)) first.set(i, r.at);
    last = Math.max(last, r.at);
  }
  const latency = [...first]
    .map(([i, at]) => at - (a.eventAt[i] ?? Number.NaN))
    .filter((x) => Number.isFinite(x))
    .sort((x, y) => x - y);
  const t0 = Math.min(...a.eventAt.filter((x) => x !== undefined));
  return {
    name,
    events: a.events,
    wakeups: got.length,
    latency,
    perSecond: got.length / Math.max(0.001, (last - t0) / 1000),
    wallMs: a.settledAt - a.startedAt,
    sender: a.usage,
    serviceCpuSeconds,
    failed: got.filter((r) => r.status !== 201).length,
  };
}

const f0 = (x: number) => Math.round(x).toLocaleString('en-US');
const f1 = (x: number) => x.toFixed(1);

function report(
  o: Options,
  phases: PhaseResult[],
  setup: { registeredMs: number; usage: Usage },
  load: number[][],
) {
  const [anchor, paced, burst, chats] = phases as [PhaseResult, PhaseResult, PhaseResult, PhaseResult];
  const p99 = percentile(paced.latency, 99);
  const holds = p99 <= 1000 && paced.wakeups === o.devices && paced.failed === 0;
  const row = (p: PhaseResult, what: string) =>
    `| ${what} | ${f0(p.events)} | ${f0(p.wakeups)} | ${f0(percentile(p.latency, 50))} | ${f0(percentile(p.latency, 99))} | ${f0(p.latency.at(-1) ?? Number.NaN)} | ${f0(p.perSecond)} | ${(p.perSecond / anchor.perSecond).toFixed(2)} | ${f1(p.sender.cpuSeconds)} / ${f1(p.serviceCpuSeconds)} | ${f0(p.sender.peakRssMiB)} |`;
  const cpu = os.cpus();
  return [
    BEGIN,
    '## Wake-ups (push)',
    '',
    `Generated by \`npm run bench:push${process.argv.slice(2).length ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\` (test/bench/push/run.ts) on ${new Date().toISOString()}: ${cpu.length} × ${cpu[0]?.model ?? '?'}, ${f1(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; 1-minute load average ${load[0]![0]!.toFixed(1)} at the start, ${load[1]![0]!.toFixed(1)} at the end.`,
    '',
    `${f0(o.devices)} devices, each with one Web Push registration written through \`push.register\` (input and endpoint checked, lmdb) in ${f0(setup.registeredMs)} ms; sender RSS after that ${f0(setup.usage.rssMiB)} MiB (heap ${f0(setup.usage.heapMiB)} MiB). The sending process is the transport's wake-up service, fed as the transport role feeds it: a DevicePusher pushes mail.new (or im.message) over the in-process bus, the detached session's edge (a subscriber answering \`{seq, detached: true}\`) holds it, the undelivered listener calls wake(), the coalescer sends, web-push encrypts, the VAPID header goes on (web-push-sender.ts signs one per push service and reuses it for an hour), the gateway's pinned request goes out. The push service (this process, the other core) verifies every VAPID JWT and decrypts every payload. Latency: from the event (before the push) to the request's arrival at the push service. Anchor: \`web-push\`'s own \`sendNotification\`, a keep-alive agent, ${o.inFlight} in flight, the same payload to the same subscriptions, in the same run; "× anchor" is throughput divided by the anchor's.`,
    '',
    '| phase | events | wake-ups | p50 ms | p99 ms | max ms | wake-ups/s | × anchor | CPU s sender / service | sender peak RSS MiB |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    row(anchor, 'anchor: web-push sendNotification (send → arrival)'),
    row(paced, `paced: mail.new at ${f0(o.rate)}/s, detached sessions`),
    row(burst, 'burst: mail.new for every device at once'),
    row(
      chats,
      `chats: ${o.chats} per device to ${f0(o.chatDevices)} devices within ${f1(o.intervalMs / 1000)} s`,
    ),
    '',
    `Target p99 ≤ 1 s at ${f0(o.rate)} wake-ups/s: **${holds ? 'holds' : 'does not hold'}** (paced p99 ${f0(p99)} ms, ${f0(paced.wakeups)} of ${f0(o.devices)} woken, ${paced.failed} refused). Coalescing under the chat burst: ${f0(chats.wakeups)} wake-ups for ${f0(chats.events)} chat messages = **${(chats.wakeups / chats.events).toFixed(3)} wake-ups per event** (one at the first message, one trailing at the interval's end, per device). Non-201 answers: anchor ${anchor.failed}, burst ${burst.failed}, chats ${chats.failed}.`,
    END,
  ].join('\n');
}

function writeSection(path: string, section: string): void {
  const text = readFileSync(path, 'utf8');
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  const next =
    start >= 0 && end > start
      ? `${text.slice(0, start)}${section}${text.slice(end + END.length)}`
      : `${text.replace(/\n*$/, '\n\n')}${section}\n`;
  writeFileSync(path, next);
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const load = [os.loadavg()];
  const push = await startPushService();
  const subs: Subscription[] = Array.from({ length: o.devices }, () => push.subscribe());
  const byEndpoint = new Map(subs.map((s, i) => [s.endpoint, i]));
  const child = fork(fileURLToPath(new URL('./sender.ts', import.meta.url)), [], {
    execArgv: [
      '--import',
      'tsx',
      ...(process.env.BENCH_PUSH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PUSH_PROF}`] : []),
    ],
    env: { ...process.env, NODE_EXTRA_CA_CERTS: push.caFile },
  });
  const stopChild = () => child.kill('SIGKILL');
  process.once('exit', stopChild);
  try {
    const link = senderLink(child);
    await link.ready;
    const setup = await link.ask<{ registeredMs: number; usage: Usage }>({
      cmd: 'setup',
      subs,
      intervalMs: o.intervalMs,
    });
    console.log(`registered ${o.devices} devices in ${setup.registeredMs} ms`);
    const phases: PhaseResult[] = [];
    const run = async (name: string, cmd: SenderCommand) => {
      const from = push.received.length;
      const cpu0 = process.cpuUsage();
      const a = await link.ask<PhaseAnswer>(cmd);
      // Requests the sender gave up on (its deadline) may still be in this process's queue: the
      // next phase starts once nothing has come for a second (at most a minute), so that none of
      // them is counted there.
      const until = Date.now() + 60_000;
      for (let seen = -1; seen !== push.received.length && Date.now() < until; ) {
        seen = push.received.length;
        await new Promise((r) => setTimeout(r, 1000));
      }
      const cpu = process.cpuUsage(cpu0);
      const kind = name === 'chats' ? 'chat' : 'mail';
      const r = collect(name, kind, push, from, byEndpoint, a, (cpu.user + cpu.system) / 1e6);
      phases.push(r);
      console.log(
        `${name}: ${r.wakeups} wake-ups for ${r.events} events, p50 ${percentile(r.latency, 50)} ms, p99 ${percentile(r.latency, 99)} ms, ${Math.round(r.perSecond)}/s, sender peak RSS ${Math.round(r.sender.peakRssMiB)} MiB`,
      );
    };
    await run('anchor', { cmd: 'anchor', inFlight: o.inFlight });
    await run('paced', { cmd: 'paced', rate: o.rate, event: 'mail.new' });
    await run('burst', { cmd: 'burst', event: 'mail.new' });
    await run('chats', {
      cmd: 'chats',
      devices: o.chatDevices,
      perDevice: o.chats,
      spreadMs: Math.round(o.intervalMs * 0.6),
      waitMs: o.intervalMs + 1000,
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await link.ask({ cmd: 'stop' });
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    load.push(os.loadavg());
    const section = report(o, phases, setup, load);
    if (o.write) {
      writeSection(o.out, section);
      console.log(`written to ${o.out}`);
    } else {
      console.log(section);
    }
  } finally {
    stopChild();
    await push.stop();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
