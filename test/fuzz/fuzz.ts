/**
 * One fuzzing run against a real gateway process: peers up (fuzz-peers),
 * devices provisioned, handsets connected (the SDK, half over WebSocket,
 * half long-poll), each with a mail and a chat account; then for a bounded
 * time every handset sends generated requests (requests.ts) at a steady
 * rate, a raw client throws broken frames (raw-fuzz.ts), a control handset
 * echoes, and the gateway's memory is sampled. Then every request still
 * open is waited for, and everything is taken down.
 *
 * Findings (answers.ts): the gateway process exits; an answer whose code is
 * not a handset code of the registry, or whose message shows a stack; a
 * request with no answer within the answer timeout; another device's
 * account id that works; RSS over its bound; the control session failing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { encodeFrame } from '../../device-protocol/codec.ts';
import { GatewayError } from '../../device-protocol/errors.ts';
import { Handset } from '../../device-protocol/handset.ts';
import { Kind, type Frame } from '../../device-protocol/messages.ts';
import { provisionDevices } from '../bench/edge/provision.ts';
import { type Gateway, startGateway } from '../harness/gateway.ts';
import { isHandsetCode, outcomeOfRejection, type Outcome, Tally } from './answers.ts';
import { DeviceKnowledge, type SharedKnowledge } from './knowledge.ts';
import { RssMonitor, type RssSample } from './memory.ts';
import { gatewayMethods } from './methods.ts';
import { startFuzzPeers } from './peers.ts';
import { RawFuzzer } from './raw-fuzz.ts';
import { DEFAULT_MIX, type FuzzRequest, RequestGenerator, type RequestMix } from './requests.ts';
import { Rng } from './rng.ts';
import { showValue } from './values.ts';
import { WireTrace } from './wire-trace.ts';

export interface FuzzOptions {
  /** How long requests are sent (the drain after it is extra). */
  seconds: number;
  /** Fuzzing handsets (the control handset and the raw clients come on top). */
  devices: number;
  seed: number;
  /** Requests per second per handset (the edge's limit is 50 frames/s per device). */
  ratePerDevice: number;
  /** Requests of one handset waiting for an answer at most. */
  maxInflight: number;
  /** Raw frame-level episodes per second (0: none). */
  rawPerSecond: number;
  /** A request with no answer after this long is a finding. */
  answerTimeoutMs: number;
  /** RSS bound: the gateway's RSS when fuzzing began plus this. */
  rssMarginMiB: number;
  mix: RequestMix;
  /** Progress lines (default: none). */
  log: (line: string) => void;
}

export const DEFAULT_FUZZ_OPTIONS: FuzzOptions = {
  seconds: 60,
  devices: 8,
  seed: 1,
  ratePerDevice: 8,
  maxInflight: 16,
  rawPerSecond: 2,
  answerTimeoutMs: 60_000,
  rssMarginMiB: 256,
  mix: DEFAULT_MIX,
  log: () => {},
};

export interface LatencySummary {
  count: number;
  failures: number;
  p50: number;
  p99: number;
  max: number;
}

export interface FuzzReport {
  options: Omit<FuzzOptions, 'log'>;
  /** Seconds of fuzzing, and of waiting for the last answers. */
  fuzzSeconds: number;
  drainSeconds: number;
  tally: Tally;
  rawEpisodes: Map<string, number>;
  events: Map<string, number>;
  handsetRestarts: number;
  rss: { start: RssSample; peak: RssSample; end: RssSample; boundBytes: number; series: RssSample[] };
  control: LatencySummary;
  /** Error and fatal records the gateway logged (first few), and how many. */
  gatewayErrors: { count: number; samples: string[] };
  gatewayExit?: string;
}

interface FuzzDevice {
  index: number;
  imei: string;
  secret: string;
  transport: 'ws' | 'poll';
  /** With the SDK's default plugins (compact mail headers and IM forms), or none (bodies as generated). */
  plugins: boolean;
  handset: Handset;
  knowledge: DeviceKnowledge;
  generator: RequestGenerator;
  timing: Rng;
  inflight: number;
  /** Request ids are the fuzzer's own (`d<index>.<n>`), so findings can name them. */
  requests: number;
  /** Long-poll handsets: what crossed the wire per request. */
  trace?: WireTrace;
}

/** A request id as long as the SDK's, for checking a frame's size before the SDK does. */
const ID_PROBE = 'x'.repeat(24);
const FALLBACK_FRAME_LIMIT = 256 * 1024;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

function latencySummary(samples: number[], failures: number): LatencySummary {
  const sorted = [...samples].sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 10) / 10;
  return {
    count: samples.length,
    failures,
    p50: round(percentile(sorted, 50)),
    p99: round(percentile(sorted, 99)),
    max: round(sorted[sorted.length - 1] ?? 0),
  };
}

/** Log records at error or fatal, in either pino form (numeric or labelled level). */
function gatewayErrorLines(lines: readonly string[]): string[] {
  return lines.filter((l) => /"level":(50|60|"error"|"fatal")/.test(l));
}

export async function runFuzz(given: Partial<FuzzOptions> = {}): Promise<FuzzReport> {
  const o: FuzzOptions = { ...DEFAULT_FUZZ_OPTIONS, ...given };
  const log = o.log;
  const root = new Rng(o.seed);
  const methods = gatewayMethods();
  let fuzzStartedAt = Date.now();
  const tally = new Tally(new Set(methods.map((m) => m.method)), () => fuzzStartedAt);

  log(`seed ${o.seed}: starting Dovecot, the SMTP peer and Prosody for ${o.devices} devices`);
  const peers = await startFuzzPeers(o.devices);
  const dataDir = mkdtempSync(join(tmpdir(), 'mmgw-fuzz-'));
  let gw: Gateway | undefined;
  const handsets: Handset[] = [];
  try {
    // Fuzzing handsets, then the control handset, then two for the raw fuzzer.
    const creds = await provisionDevices(dataDir, o.devices + 3);
    gw = await startGateway({
      dataDir,
      env: { MMGW_ALLOW_DESTINATIONS: '127.0.0.0/8,::1', MMGW_LOG_LEVEL: 'warn' },
    });
    const gateway = gw;
    log(`gateway pid ${gateway.pid} on ${gateway.url}`);

    let stopping = false;
    let closing = false;
    let gatewayExit: string | undefined;
    gateway.process.once('exit', (code, signal) => {
      if (closing) return;
      gatewayExit = `exit code ${code} signal ${signal}`;
      stopping = true;
      const tail = [...gateway.stderr.slice(-40), ...gatewayErrorLines(gateway.stdout).slice(-10)].join('\n');
      tally.find({
        kind: 'gateway-exit',
        detail: `the gateway process ended during the run (${gatewayExit})`,
        evidence: tail,
      });
      // Nothing will answer now: end the open requests (as 'closed', not as findings) and the run.
      for (const h of handsets) void h.close().catch(() => {});
    });

    const events = new Map<string, number>();
    let handsetRestarts = 0;
    const shared: SharedKnowledge = { devices: [] };
    const newHandset = (
      imei: string,
      secret: string,
      transport: 'ws' | 'poll',
      plugins: boolean,
      onLost?: () => void,
      trace?: WireTrace,
    ) => {
      const h = new Handset({
        ...(trace === undefined ? {} : { fetch: trace.fetch }),
        url: gateway.url,
        imei,
        secret,
        transport,
        WebSocket,
        client: 'mmgw-fuzz/1',
        requestTimeoutMs: o.answerTimeoutMs,
        backoff: { initialMs: 200, maxMs: 2000 },
        ...(plugins ? {} : { plugins: [] }),
      });
      handsets.push(h);
      h.on('disconnected', (e) => {
        if (closing || gatewayExit !== undefined) return;
        tally.recordDisconnect(e.code, transport);
        if (!e.willReconnect) onLost?.();
      });
      h.on('error', (e) => {
        if (!closing && !isHandsetCode(e.code)) {
          tally.find({
            kind: 'untyped-answer',
            device: imei,
            detail: `an Error without id carried ${JSON.stringify(e.code)}`,
            evidence: e.message,
          });
        }
      });
      h.on('event', (e) => events.set(e.name, (events.get(e.name) ?? 0) + 1));
      return h;
    };

    const devices: FuzzDevice[] = [];
    for (let i = 0; i < o.devices; i++) {
      const [imei, secret] = creds[i] as [string, string];
      const login = peers.logins[i] as (typeof peers.logins)[number];
      const knowledge = new DeviceKnowledge(imei, login.mail, login.xmpp);
      shared.devices.push(knowledge);
      const rng = root.fork(`device-${i}`);
      const dev: FuzzDevice = {
        index: i,
        imei,
        secret,
        transport: i % 2 === 0 ? 'ws' : 'poll',
        plugins: i % 4 < 2,
        knowledge,
        timing: rng.fork('timing'),
        inflight: 0,
        requests: 0,
        ...(i % 2 === 1 ? { trace: new WireTrace() } : {}),
        handset: undefined as unknown as Handset,
        generator: undefined as unknown as RequestGenerator,
      };
      dev.generator = new RequestGenerator(
        methods,
        rng,
        knowledge,
        shared,
        () => dev.handset.welcome?.maxFrameBytes ?? FALLBACK_FRAME_LIMIT,
        o.mix,
      );
      const restart = () => {
        if (stopping || closing) return;
        handsetRestarts++;
        // The old one gave up for good (a refusal no retry fixes): a device would start again.
        setTimeout(() => {
          if (stopping || closing) return;
          dev.handset = newHandset(imei, secret, dev.transport, dev.plugins, restart, dev.trace);
          dev.handset.connect().catch((err: unknown) => {
            const code = err instanceof GatewayError ? err.code : String(err);
            if (code.startsWith('auth.') && code !== 'auth.rate_limited') {
              tally.find({
                kind: 'control',
                device: imei,
                detail: `a provisioned device was refused on reconnect: ${code}`,
              });
            }
          });
        }, 500).unref();
      };
      dev.handset = newHandset(imei, secret, dev.transport, dev.plugins, restart, dev.trace);
      devices.push(dev);
    }
    const [controlImei, controlSecret] = creds[o.devices] as [string, string];
    let controlLost = 0;
    const control = newHandset(controlImei, controlSecret, 'ws', true, () => controlLost++);
    control.on('disconnected', (e) => {
      if (!closing && gatewayExit === undefined) {
        tally.find({
          kind: 'control',
          device: controlImei,
          detail: `the control session was disconnected (${e.code ?? e.reason})`,
        });
      }
    });
    await Promise.all([...devices.map((d) => d.handset.connect()), control.connect()]);

    // Each device gets its accounts the way a handset would, and a first look at its INBOX.
    log('handsets connected; adding a mail and a chat account per device');
    await Promise.all(
      devices.map(async (d) => {
        const k = d.knowledge;
        const mail = await d.handset.request('mail.account.add', {
          address: k.mail.address,
          imap: k.mail.imap,
          smtp: k.mail.smtp,
        });
        k.learn('mail.account.add', undefined, mail);
        const im = await d.handset.request('im.login', {
          jid: k.xmpp.jid,
          password: k.xmpp.password,
          host: k.xmpp.host,
          port: k.xmpp.port,
        });
        k.learn('im.login', undefined, im);
        const account = [...k.mailAccounts][0] ?? '';
        k.learn('mail.folders', undefined, await d.handset.request('mail.folders', { account }));
        k.learn(
          'mail.sync',
          undefined,
          await d.handset.request('mail.sync', { account, folder: 'INBOX', limit: 50, compact: false }),
        );
      }),
    );

    const pending = new Set<Promise<void>>();
    const send = (dev: FuzzDevice, req: FuzzRequest): void => {
      const h = dev.handset;
      const limit = h.welcome?.maxFrameBytes ?? FALLBACK_FRAME_LIMIT;
      try {
        encodeFrame({ kind: Kind.Request, id: ID_PROBE, method: req.method, body: req.body } as Frame, {
          maxFrameBytes: limit,
        });
      } catch (err) {
        // The SDK refuses these before sending (a test of its own); the raw fuzzer sends such frames.
        tally.recordRefusedLocally(err instanceof GatewayError ? err.code : 'thrown');
        return;
      }
      tally.recordSent(req.method, req.mode, req.schemaValid);
      dev.inflight++;
      const id = `d${dev.index}.${++dev.requests}`;
      const context = {
        device: `${dev.imei} (${dev.transport}${dev.plugins ? '' : ', no plugins'}), request ${id}`,
        mode: req.mode,
        ...(req.mutation === undefined ? {} : { mutation: req.mutation }),
        body: showValue(req.body),
      };
      const done = h
        .request(req.method, req.body, { id })
        .then(
          (answer): Outcome => {
            if (req.foreignAccount !== undefined && !dev.knowledge.owns(req.foreignAccount)) {
              tally.find({
                ...context,
                kind: 'isolation',
                method: req.method,
                detail: `another device's account ${req.foreignAccount} worked: ${req.method} succeeded`,
                evidence: showValue(answer),
              });
            }
            dev.knowledge.learn(req.method, req.body, answer);
            return { kind: 'result' };
          },
          (err: unknown) => outcomeOfRejection(err),
        )
        .then((outcome) => {
          let evidence: string | undefined;
          if (outcome.kind === 'no-answer') evidence = dev.trace?.evidence(id);
          else dev.trace?.forget(id);
          tally.recordOutcome(req.method, outcome, {
            ...context,
            ...(evidence === undefined ? {} : { evidence }),
          });
        })
        .finally(() => {
          dev.inflight--;
          pending.delete(done);
        });
      pending.add(done);
    };

    /** Puts back what the fuzzing took away (accounts removed, mails moved), now and then. */
    const maintain = (dev: FuzzDevice): void => {
      const k = dev.knowledge;
      const valid = (method: string, body: FuzzRequest['body']): FuzzRequest => ({
        method,
        body,
        mode: 'valid',
        schemaValid: true,
      });
      if (k.mailAccounts.size === 0)
        send(
          dev,
          valid('mail.account.add', { address: k.mail.address, imap: k.mail.imap, smtp: k.mail.smtp }),
        );
      if (k.imAccounts.size === 0) {
        send(
          dev,
          valid('im.login', {
            jid: k.xmpp.jid,
            password: k.xmpp.password,
            host: k.xmpp.host,
            port: k.xmpp.port,
          }),
        );
      }
      const account = [...k.mailAccounts][0];
      if (account !== undefined) send(dev, valid('mail.sync', { account, folder: 'INBOX', limit: 50 }));
    };

    const deviceLoop = async (dev: FuzzDevice): Promise<void> => {
      const interval = 1000 / o.ratePerDevice;
      for (let n = 1; !stopping; n++) {
        await sleep(interval * (0.5 + dev.timing.next()));
        if (stopping) break;
        if (dev.inflight >= o.maxInflight) continue;
        if (n % 50 === 0) maintain(dev);
        else send(dev, dev.generator.next());
      }
    };

    const controlLatencies: number[] = [];
    let controlFailures = 0;
    const controlLoop = async (): Promise<void> => {
      for (let n = 0; !stopping; n++) {
        const t0 = performance.now();
        try {
          const body = { n, pad: 'control'.repeat(20) };
          const back = await control.request('sys.echo', body);
          if (showValue(back) !== showValue(body))
            throw new Error(`echo changed the body: ${showValue(back)}`);
          controlLatencies.push(performance.now() - t0);
        } catch (err) {
          if (gatewayExit !== undefined) break;
          controlFailures++;
          tally.find({
            kind: 'control',
            device: controlImei,
            method: 'sys.echo',
            detail: `the control echo failed: ${err instanceof Error ? err.message : String(err)}`,
          });
        }
        await sleep(100);
      }
    };

    const rawDevices = creds.slice(o.devices + 1).map(([imei, secret]) => ({ imei, secret }));
    const raw = new RawFuzzer({
      url: gateway.url,
      devices: rawDevices,
      rng: root.fork('raw'),
      tally,
      maxFrameBytes: control.welcome?.maxFrameBytes ?? FALLBACK_FRAME_LIMIT,
    });
    const rawLoop = async (): Promise<void> => {
      if (o.rawPerSecond <= 0) return;
      const gap = 1000 / o.rawPerSecond;
      while (!stopping) {
        const t0 = Date.now();
        await raw.episode().catch((err: unknown) => {
          tally.find({
            kind: 'fuzzer',
            mode: 'raw',
            detail: 'a raw episode threw',
            evidence: err instanceof Error ? err.stack : String(err),
          });
        });
        await sleep(Math.max(0, gap - (Date.now() - t0)));
      }
    };

    const marginBytes = o.rssMarginMiB * 1024 * 1024;
    const monitor = new RssMonitor(gateway.process.pid ?? gateway.pid, (s, bound) => {
      tally.find({
        kind: 'memory',
        detail: `gateway RSS ${(s.bytes / 2 ** 20).toFixed(0)} MiB passed its bound of ${(bound / 2 ** 20).toFixed(0)} MiB at ${s.at} s`,
      });
    });
    const rssStart = monitor.start(1000);
    monitor.boundBytes = rssStart.bytes + marginBytes;

    fuzzStartedAt = Date.now();
    log(
      `fuzzing for ${o.seconds} s: ${o.devices} handsets × ${o.ratePerDevice} requests/s, ${o.rawPerSecond} raw episodes/s`,
    );
    const progress = setInterval(() => {
      let sent = 0;
      for (const v of tally.sent.values()) sent += v;
      const rss = monitor.samples[monitor.samples.length - 1];
      log(
        `  ${tally.elapsed()} s: ${sent} sent, ${pending.size} open, ${tally.findingTotal()} findings, RSS ${((rss?.bytes ?? 0) / 2 ** 20).toFixed(0)} MiB`,
      );
    }, 10_000);
    progress.unref();
    const deadline = setTimeout(() => {
      stopping = true;
    }, o.seconds * 1000);
    deadline.unref();
    await Promise.all([...devices.map(deviceLoop), controlLoop(), rawLoop()]);
    clearTimeout(deadline);
    const fuzzSeconds = (Date.now() - fuzzStartedAt) / 1000;

    // Every request still open gets its answer or the SDK's timeout (a finding); a little over that is the bound.
    log(`draining ${pending.size} open requests`);
    const drainStart = Date.now();
    const drainBound = sleep(o.answerTimeoutMs + 15_000, 'bound' as const, { ref: false });
    const drained = await Promise.race([
      Promise.allSettled([...pending]).then(() => 'done' as const),
      drainBound,
    ]);
    if (drained === 'bound' && pending.size > 0) {
      tally.find({
        kind: 'no-answer',
        detail: `${pending.size} requests neither answered nor timed out by the SDK`,
      });
    }
    clearInterval(progress);
    const drainSeconds = (Date.now() - drainStart) / 1000;

    // The gateway must still serve a session after all that.
    if (gatewayExit === undefined) {
      try {
        await control.request('sys.echo', { after: true });
      } catch (err) {
        tally.find({
          kind: 'control',
          device: controlImei,
          detail: `the control echo after the run failed: ${String(err)}`,
        });
      }
    }
    const rssEnd = monitor.stop();
    closing = true;
    const errors = gatewayErrorLines(gateway.stdout);
    const { log: _log, ...options } = o;
    return {
      options,
      fuzzSeconds,
      drainSeconds,
      tally,
      rawEpisodes: raw.episodes,
      events,
      handsetRestarts,
      rss: {
        start: rssStart,
        peak: monitor.peak() ?? rssEnd,
        end: rssEnd,
        boundBytes: monitor.boundBytes,
        series: monitor.samples,
      },
      control: latencySummary(controlLatencies, controlFailures + controlLost),
      gatewayErrors: { count: errors.length, samples: errors.slice(0, 5).map((l) => l.slice(0, 600)) },
      ...(gatewayExit === undefined ? {} : { gatewayExit }),
    };
  } finally {
    await Promise.all(handsets.map((h) => h.close().catch(() => {})));
    await gw?.stop();
    await peers.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
