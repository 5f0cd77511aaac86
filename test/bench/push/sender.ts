/**
 * The sending side of `npm run bench:push` (run.ts forks it with
 * NODE_EXTRA_CA_CERTS naming the push service's CA): the transport's wake-up
 * service as the transport role opens it (server/transport/push/: real lmdb
 * TransportStorage, the outbound policy, the coalescer, the Web Push sender),
 * fed as the role feeds it: a DevicePusher pushes mail.new or im.message over
 * the in-process bus, and the edge's reply says the session is detached
 * (`{seq, detached: true}`, answered by a subscriber on the device subjects:
 * the edge's own cost per event is bench:edge's), so the undelivered
 * listener (wake-feed.ts) calls wake(). The anchor, in the same process:
 * `web-push`'s own sendNotification to the same subscriptions, with a
 * keep-alive agent, a fixed number in flight.
 *
 * Commands come from run.ts over IPC, one at a time; each answers once done.
 */
import { Agent } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import webpush from 'web-push';
import { Subjects } from '../../../server/bus/bus.ts';
import { InProcessBus } from '../../../server/bus/inproc.ts';
import { DestinationPolicy } from '../../../server/net/destination-policy.ts';
import { DevicePusher, onUndelivered } from '../../../server/transport/kit/device-pusher.ts';
import { TransportStorage } from '../../../server/transport/kit/transport-storage.ts';
import { wakeFields } from '../../../server/transport/push/channel.ts';
import { openPushService } from '../../../server/transport/push/index.ts';
import { wakeFeed } from '../../../server/transport/push/wake-feed.ts';
import type { MethodContext } from '../../../server/transport/types.ts';

export interface Subscription {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

export type SenderCommand =
  | { cmd: 'setup'; subs: Subscription[]; intervalMs: number }
  | { cmd: 'anchor'; inFlight: number }
  | { cmd: 'paced'; rate: number; event: 'mail.new' | 'im.message' }
  | { cmd: 'burst'; event: 'mail.new' }
  | { cmd: 'chats'; devices: number; perDevice: number; spreadMs: number; waitMs: number }
  | { cmd: 'stop' };

export interface Usage {
  cpuSeconds: number;
  rssMiB: number;
  peakRssMiB: number;
  heapMiB: number;
}

export interface PhaseAnswer {
  /** Date.now() of each device's event (index = device), or of the anchor's send. */
  eventAt: number[];
  startedAt: number;
  /** When the last wake-up was accepted by the push service (the sender's side). */
  settledAt: number;
  events: number;
  usage: Usage;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU and memory over a phase: RSS sampled every 50 ms for the peak. */
function usageMeter() {
  const cpu0 = process.cpuUsage();
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 50);
  return (): Usage => {
    clearInterval(timer);
    const cpu = process.cpuUsage(cpu0);
    const mem = process.memoryUsage();
    peak = Math.max(peak, mem.rss);
    return {
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      rssMiB: mem.rss / 2 ** 20,
      peakRssMiB: peak / 2 ** 20,
      heapMiB: mem.heapUsed / 2 ** 20,
    };
  };
}

const deviceId = (i: number) => `bench${String(i).padStart(10, '0')}`;

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-bench-push-'));
  const storage = TransportStorage.open(dir);
  const bus = new InProcessBus();
  // The detached session's edge, reduced to its answer: the event is held, no carrier.
  let seq = 0;
  bus.subscribe(Subjects.device('*'), () => ({ seq: ++seq, detached: true }));
  const logger = pino({ level: 'warn' });
  let push: ReturnType<typeof openPushService> | undefined;
  let subs: Subscription[] = [];
  const pusher = new DevicePusher(bus);

  const answer = (m: unknown) => process.send?.(m);
  const phase = async (run: (eventAt: number[]) => Promise<number>): Promise<PhaseAnswer> => {
    const meter = usageMeter();
    const eventAt: number[] = [];
    const startedAt = Date.now();
    const events = await run(eventAt);
    await push?.settled();
    return { eventAt, startedAt, settledAt: Date.now(), events, usage: meter() };
  };
  /** The feed's path for one event: pushed, held (detached), heard, woken. */
  const event = (i: number, name: string, eventAt: number[]) => {
    eventAt[i] ??= Date.now();
    return pusher.push(deviceId(i), name);
  };

  process.on('message', async (m: SenderCommand) => {
    try {
      switch (m.cmd) {
        case 'setup': {
          subs = m.subs;
          const meter = usageMeter();
          const started = Date.now();
          push = openPushService({
            storage,
            dataDir: dir,
            policy: new DestinationPolicy({ allow: ['127.0.0.1'] }),
            settings: { intervalMs: m.intervalMs, subject: 'mailto:bench@example.test' },
            metrics: new Registry(),
            logger,
          });
          onUndelivered(bus, wakeFeed(push.wake));
          const register = push.methods.find((d) => d.method === 'push.register')!;
          // Through the method path, as a handset's push.register: input checked, endpoint checked, written.
          for (const [i, sub] of subs.entries()) {
            const ctx = { deviceId: deviceId(i), now: Date.now } as unknown as MethodContext;
            await register.handle(ctx, register.input.parse({ kind: 'webpush', ...sub }));
          }
          answer({ registeredMs: Date.now() - started, usage: meter() });
          return;
        }
        case 'anchor': {
          const vapid = webpush.generateVAPIDKeys();
          const agent = new Agent({ keepAlive: true });
          const payload = JSON.stringify(wakeFields({ tally: { kind: 'mail', mail: 1, chat: 0, since: 0 } }));
          answer(
            await phase(async (eventAt) => {
              let next = 0;
              const worker = async () => {
                while (next < subs.length) {
                  const i = next++;
                  eventAt[i] = Date.now();
                  await webpush.sendNotification(subs[i]!, payload, {
                    vapidDetails: { subject: 'mailto:bench@example.test', ...vapid },
                    TTL: 86400,
                    urgency: 'normal',
                    topic: 'wake',
                    agent,
                  });
                }
              };
              await Promise.all(Array.from({ length: m.inFlight }, worker));
              agent.destroy();
              return subs.length;
            }),
          );
          return;
        }
        case 'paced':
        case 'burst': {
          // A new session for every device first (a resume does the same): each starts uncounted.
          for (let i = 0; i < subs.length; i++) push!.deviceBack(deviceId(i));
          answer(
            await phase(async (eventAt) => {
              const pushes: Promise<number>[] = [];
              if (m.cmd === 'burst') {
                for (let i = 0; i < subs.length; i++) pushes.push(event(i, m.event, eventAt));
              } else {
                // Ticks of 10 ms: rate/100 events each, on schedule (a late tick catches up).
                const perTick = m.rate / 100;
                const t0 = Date.now();
                for (let tick = 0; tick * perTick < subs.length; tick++) {
                  const due = t0 + tick * 10;
                  if (due > Date.now()) await sleep(due - Date.now());
                  const end = Math.min(subs.length, Math.round((tick + 1) * perTick));
                  for (let i = Math.round(tick * perTick); i < end; i++)
                    pushes.push(event(i, m.event, eventAt));
                }
              }
              await Promise.all(pushes);
              return pushes.length;
            }),
          );
          return;
        }
        case 'chats': {
          for (let i = 0; i < subs.length; i++) push!.deviceBack(deviceId(i));
          answer(
            await phase(async (eventAt) => {
              const pushes: Promise<number>[] = [];
              const gap = m.spreadMs / m.perDevice;
              for (let k = 0; k < m.perDevice; k++) {
                for (let i = 0; i < m.devices; i++) pushes.push(event(i, 'im.message', eventAt));
                await sleep(gap);
              }
              await Promise.all(pushes);
              // The trailing wake-ups are due an interval after the first: wait them out.
              await sleep(m.waitMs);
              return pushes.length;
            }),
          );
          return;
        }
        case 'stop':
          await push?.close();
          await bus.close();
          await storage.close();
          rmSync(dir, { recursive: true, force: true });
          // Exits by itself (a --cpu-prof profile is written at exit), once the answer is out.
          process.send?.({ stopped: true }, () => process.exit(0));
          return;
      }
    } catch (err) {
      answer({ error: String((err as Error)?.stack ?? err) });
    }
  });
  answer({ ready: true });
}

void main();
