/**
 * `npm run bench:transcode`: the transcoder benchmark.
 *
 *  1. throughput: 12-megapixel JPEGs → screen variant (320×240 JPEG, 30 kB),
 *     (a) sharp called directly with the same settings, (b) the transcoder
 *     role over the in-process bus (bus, checks, cache, queue, quality
 *     ladder), the source handed over as the mail path does, (c) the same role
 *     offered twice as many requests as it runs, (d) transcodeImage() without
 *     the bus. Each job gets a fresh buffer with its input, as a fetched
 *     attachment arrives (the same allocation and copy in every path), so that
 *     a handed-over source can be moved; (e) and (f) are (a) and (b) the way
 *     they were measured before 2026-12-04 18:00: every job reuses the input
 *     loaded at the start, so the role cannot move it and the bus copies it.
 *     Each path runs in its own child process (so peak RSS is that path's), in
 *     alternating rounds of the same run (ABCDEF FEDCBA …, so that a drift of
 *     the machine's load weighs on every path alike), each round the same
 *     number of jobs with the same number of sharp jobs in flight; images/s,
 *     p50/p99 latency, CPU-seconds per image (all threads of the child), peak
 *     RSS (VmHWM);
 *  2. memory: 20 concurrent 24-megapixel inputs (10 JPEG, 10 PNG) through the
 *     role with its default limits, in a fresh process (test/harness/transcoder-memory-probe.ts);
 *  3. bytes saved on a mixed set (photos, screenshots, PNG with alpha, GIFs).
 *
 * Inputs are generated with sharp at the start (nothing binary in the repo)
 * and handed to the children as files. `--write` replaces (or appends) the
 * "## Transcoder" section of test/bench/RESULTS.md and leaves the rest alone,
 * hand-written "### Notes" at the end of that section included.
 * `--quick` is a smaller run for trying the benchmark itself.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { decodePayload, encodePayload } from '../../../server/bus/codec.ts';
import { InProcessBus } from '../../../server/bus/inproc.ts';
import {
  configureSharp,
  DEFAULT_LIMITS,
  type ImageVariantSpec,
  SourceFingerprint,
  sourceHash,
  TranscoderClient,
  transcodeImage,
} from '../../../transcoder/index.ts';
import { memoryCeilingBytes } from '../../../transcoder/limits.ts';
import { startTranscoder } from '../../../transcoder/role.ts';
import type { MemoryProbeResult } from '../../harness/transcoder-memory-probe.ts';
import {
  alphaPng,
  animatedPhotoGif,
  paletteGif,
  photoJpeg,
  screenshotPng,
  withJpegComment,
  withPngText,
} from '../../../testing/index.ts';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const self = fileURLToPath(import.meta.url);
const args = new Map<string, string>();
for (const a of process.argv.slice(2)) {
  const [k = '', v] = a.replace(/^--/, '').split('=');
  args.set(k, v ?? 'true');
}
const quick = args.has('quick');
const opts = {
  images: Number(args.get('images') ?? (quick ? 3 : 6)),
  rounds: Number(args.get('rounds') ?? (quick ? 2 : 4)),
  jobsPerRound: Number(args.get('jobs') ?? (quick ? 12 : 50)),
  concurrency: Number(args.get('concurrency') ?? DEFAULT_LIMITS.maxConcurrent),
  memoryInputs: Number(args.get('memory-inputs') ?? 20),
  write: args.has('write'),
};

const SCREEN: ImageVariantSpec = { width: 320, height: 240, format: 'jpeg', maxBytes: 30_000 };
const log = (s: string) => process.stderr.write(`${s}\n`);
const gc = () => (globalThis as { gc?: () => void }).gc?.();
const mb = (n: number) => (n / 1024 / 1024).toFixed(0);
const kb = (n: number) => (n / 1024).toFixed(0);

type Path = 'direct' | 'role' | 'role-deep' | 'pipeline' | 'direct-preloaded' | 'role-preloaded';
const PATHS: Path[] = ['direct', 'role', 'role-deep', 'pipeline', 'direct-preloaded', 'role-preloaded'];
/** Paths that reuse the inputs loaded at the start for every job (the method before 2026-12-04 18:00). */
const PRELOADED = new Set<Path>(['direct-preloaded', 'role-preloaded']);

interface RoundResult {
  jobs: number;
  wallMs: number;
  cpuUs: number;
  latencies: number[];
  maxRss: number;
  outBytes: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

function readInputs(dir: string): Buffer[] {
  return readdirSync(dir)
    .sort()
    .map((f) => readFileSync(join(dir, f)));
}

/** sharp alone, with the settings the pipeline uses for this spec. */
function directSharp(input: Buffer): Promise<Buffer> {
  return sharp(input, {
    limitInputPixels: DEFAULT_LIMITS.maxInputPixels,
    failOn: DEFAULT_LIMITS.failOn,
    sequentialRead: true,
    autoOrient: true,
  })
    .resize({ width: SCREEN.width, height: SCREEN.height, fit: 'inside', withoutEnlargement: true })
    .toColourspace('srgb')
    .flatten({ background: '#ffffff' })
    .timeout({ seconds: DEFAULT_LIMITS.jobTimeoutMs / 1000 })
    .jpeg({ quality: DEFAULT_LIMITS.qualityLadder[0], optimiseCoding: true })
    .toBuffer();
}

/**
 * A fresh buffer with the bytes of `input`, as a fetched attachment arrives
 * (the mail path's Buffer.concat of the IMAP stream: one allocation of its own, one copy).
 */
function fetched(input: Buffer): Buffer {
  const bytes = Buffer.allocUnsafeSlow(input.byteLength);
  input.copy(bytes);
  return bytes;
}

/**
 * `count` jobs through `run`, `inFlight` at a time (closed loop); each job
 * gets a fresh copy of its input (fetched()), or with `preloaded` the loaded
 * input itself.
 */
async function closedLoop(
  count: number,
  inFlight: number,
  inputs: Buffer[],
  offset: number,
  run: (input: Buffer) => Promise<Uint8Array>,
  preloaded: boolean,
): Promise<Omit<RoundResult, 'maxRss'>> {
  let next = 0;
  const latencies: number[] = [];
  let outBytes = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= count) return;
      const started = performance.now();
      const input = inputs[(offset + i) % inputs.length]!;
      const out = await run(preloaded ? input : fetched(input));
      latencies.push(performance.now() - started);
      outBytes += out.byteLength;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { jobs: count, wallMs, cpuUs: cpu.user + cpu.system, latencies, outBytes };
}

/** A child: one round of one path; prints its RoundResult as JSON. */
async function child(path: Path, dir: string, offset: number): Promise<void> {
  configureSharp();
  const inputs = readInputs(dir);
  const dataDir = mkdtempSync(join(os.tmpdir(), 'mmgw-bench-transcode-'));
  const bus = new InProcessBus();
  try {
    let run: (input: Buffer) => Promise<Uint8Array>;
    let inFlight = opts.concurrency;
    let role: Awaited<ReturnType<typeof startTranscoder>> | undefined;
    const preloaded = PRELOADED.has(path);
    if (path === 'direct' || path === 'direct-preloaded') run = directSharp;
    else if (path === 'pipeline') run = async (p) => (await transcodeImage(p, SCREEN)).bytes;
    else {
      // The role as deployed (cache on) where every request is a miss: each asks a budget one
      // byte larger than the one before (the same work, another cache key).
      role = await startTranscoder({ bus, dataDir });
      const client = new TranscoderClient(bus, { timeoutMs: 120_000 });
      let budget = SCREEN.maxBytes;
      // A fresh source is handed over (moved, as the mail path does); a preloaded one is reused, so copied.
      const handOver = !preloaded;
      run = async (p) => (await client.image(p, { ...SCREEN, maxBytes: budget++ }, { handOver })).bytes;
      // Offered twice as many requests as it runs: its queue keeps sharp busy while the
      // main thread moves the next source; sharp still runs at most maxConcurrent jobs.
      if (path === 'role-deep') inFlight = opts.concurrency * 2;
    }
    await closedLoop(opts.concurrency * 2, inFlight, inputs, offset + 1, run, preloaded); // warm-up
    gc();
    const result = await closedLoop(opts.jobsPerRound, inFlight, inputs, offset, run, preloaded);
    const maxRss = peakRss();
    if (role !== undefined) {
      const s = role.stats();
      if (s.cacheHits > 0 || s.joined > 0) throw new Error(`the role shared work: ${JSON.stringify(s)}`);
      await role.stop();
    }
    process.stdout.write(`${JSON.stringify({ ...result, maxRss } satisfies RoundResult)}\n`);
  } finally {
    await bus.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * This process's peak RSS, from the kernel (VmHWM: per process, starts afresh
 * at exec). getrusage's maxRSS would not do: on Linux it survives exec, so it
 * could be the parent's. (Until 2026-12-04 a 5 ms sampler of
 * process.memoryUsage.rss() ran in every child instead: it cost the role arm
 * ~0.4 ms of CPU per image in the profile, the direct arm ~0.1, and could miss
 * a peak between two samples.)
 */
function peakRss(): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  if (m === null) throw new Error('no VmHWM in /proc/self/status');
  return Number(m[1]) * 1024;
}

function spawnChild(extra: string[]): unknown {
  const passThrough = process.argv.slice(2).filter((a) => !a.startsWith('--write'));
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', self, ...passThrough, ...extra], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`child ${extra.join(' ')} failed with ${r.status}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
}

async function main(): Promise<void> {
  configureSharp();
  const work = mkdtempSync(join(os.tmpdir(), 'mmgw-bench-transcode-inputs-'));
  const lines: string[] = [];
  try {
    log(`generating ${opts.images} 12-MP JPEGs …`);
    const photoDir = join(work, 'photos');
    const photos: Buffer[] = [];
    for (let i = 0; i < opts.images; i++) {
      const p = await photoJpeg(4000, 3000, {
        seed: 1000 + i,
        orientation: i % 2 === 0 ? 1 : 6,
        detail: true,
      });
      photos.push(p);
    }
    mkdirSync(photoDir);
    for (const [i, p] of photos.entries())
      writeFileSync(join(photoDir, `${String(i).padStart(3, '0')}.jpg`), p);
    const avgPhoto = photos.reduce((s, p) => s + p.length, 0) / photos.length;

    // 1. Throughput, alternating paths round by round, every other round in reverse order.
    const results = new Map<Path, RoundResult[]>(PATHS.map((p) => [p, []]));
    const loadAtStart = os.loadavg()[0]!;
    const loads: number[] = [];
    for (let r = 0; r < opts.rounds; r++) {
      for (const path of r % 2 === 0 ? PATHS : [...PATHS].reverse()) {
        const load = os.loadavg()[0]!;
        loads.push(load);
        log(`round ${r + 1}/${opts.rounds}: ${path} (load ${load.toFixed(1)}) …`);
        results
          .get(path)!
          .push(spawnChild([`--child=${path}`, `--dir=${photoDir}`, `--offset=${r}`]) as RoundResult);
      }
    }
    const summary = (rounds: RoundResult[]) => {
      const jobs = rounds.reduce((s, r) => s + r.jobs, 0);
      const wallMs = rounds.reduce((s, r) => s + r.wallMs, 0);
      const sorted = rounds.flatMap((r) => r.latencies).sort((a, b) => a - b);
      return {
        jobs,
        rate: jobs / (wallMs / 1000),
        p50: percentile(sorted, 50),
        p99: percentile(sorted, 99),
        cpu: rounds.reduce((s, r) => s + r.cpuUs, 0) / 1e6 / jobs,
        rss: Math.max(...rounds.map((r) => r.maxRss)),
        out: rounds.reduce((s, r) => s + r.outBytes, 0) / jobs,
      };
    };
    const d = summary(results.get('direct')!);
    const v = summary(results.get('role')!);
    const v2 = summary(results.get('role-deep')!);
    const p = summary(results.get('pipeline')!);
    const dPre = summary(results.get('direct-preloaded')!);
    const vPre = summary(results.get('role-preloaded')!);

    // Where the role's extra CPU goes, per source (main thread).
    const cpuMsPer = (f: (p: Buffer) => void, n = 30) => {
      for (let i = 0; i < 3; i++) f(photos[i % photos.length]!); // warm (first-use setup is not per source)
      const c0 = process.cpuUsage();
      for (let i = 0; i < n; i++) f(photos[i % photos.length]!);
      const c = process.cpuUsage(c0);
      return (c.user + c.system) / 1000 / n;
    };
    // What the in-process bus does with a source that is not handed over: one copy (the encode).
    const codecMs = cpuMsPer((b) => {
      decodePayload(
        encodePayload({ source: new Uint8Array(b.buffer, b.byteOffset, b.byteLength), spec: SCREEN }),
        'owned',
      );
    });
    const shaMs = cpuMsPer((b) => {
      sourceHash(b);
    });
    const fingerprint = SourceFingerprint.random();
    const hashMs = cpuMsPer((b) => {
      fingerprint.of(b);
    });

    // 2. Memory.
    log(`generating ${opts.memoryInputs} 24-MP inputs for the memory run …`);
    const bigJpeg = await photoJpeg(6000, 4000, { seed: 77, detail: true });
    const bigPng = await screenshotPng(6000, 4000);
    const memDir = join(work, 'big');
    mkdirSync(memDir);
    for (let i = 0; i < opts.memoryInputs; i++) {
      const bytes = i % 2 === 0 ? withJpegComment(bigJpeg, `copy ${i}`) : withPngText(bigPng, `copy ${i}`);
      writeFileSync(join(memDir, `${String(i).padStart(3, '0')}`), bytes);
    }
    const probe = spawnSync(
      process.execPath,
      ['--expose-gc', '--import', 'tsx', join(root, 'test/harness/transcoder-memory-probe.ts'), memDir],
      { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
    );
    if (probe.status !== 0) throw new Error(`memory probe failed with ${probe.status}`);
    const mem = JSON.parse(probe.stdout.trim()) as MemoryProbeResult;

    // 3. Bytes saved on a mixed set.
    log('generating the mixed set …');
    const mixed: Array<{ kind: string; bytes: Buffer }> = [
      ...photos.slice(0, 3).map((bytes) => ({ kind: 'photo (12 MP JPEG)', bytes })),
      ...(await Promise.all(
        [1, 2, 3].map(async () => ({
          kind: 'screenshot (1080×1920 PNG)',
          bytes: await screenshotPng(1080, 1920),
        })),
      )),
      ...(await Promise.all(
        [21, 22].map(async (seed) => ({
          kind: 'PNG with alpha (1024×1024)',
          bytes: await alphaPng(1024, 1024, seed),
        })),
      )),
      { kind: 'GIF (640×480 palette)', bytes: await paletteGif(640, 480) },
      { kind: 'GIF (480×360, 12 frames)', bytes: await animatedPhotoGif(480, 360, 12) },
    ];
    const kinds = new Map<string, { n: number; before: number; jpeg: number; webp: number }>();
    for (const item of mixed) {
      const jpeg = await transcodeImage(item.bytes, SCREEN);
      const webp = await transcodeImage(item.bytes, { ...SCREEN, format: 'webp', animate: true });
      const k = kinds.get(item.kind) ?? { n: 0, before: 0, jpeg: 0, webp: 0 };
      k.n++;
      k.before += item.bytes.length;
      k.jpeg += jpeg.bytes.byteLength;
      k.webp += webp.bytes.byteLength;
      kinds.set(item.kind, k);
    }

    // Report.
    const cpuModel = os.cpus()[0]?.model ?? 'unknown';
    const pct = (a: number, b: number) => `${((1 - a / b) * 100).toFixed(1)} %`;
    const row = (label: string, s: ReturnType<typeof summary>) =>
      `| ${label} | ${s.jobs} | ${s.rate.toFixed(1)} | ${s.p50.toFixed(0)} | ${s.p99.toFixed(0)} | ${s.cpu.toFixed(3)} | ${mb(s.rss)} | ${kb(s.out)} |`;
    const flags = process.argv.slice(2).filter((a) => a !== '--write');
    lines.push('## Transcoder', '');
    lines.push(
      'Measured by `npm run bench:transcode` (test/bench/transcode/run.ts); inputs generated with sharp at the start of the run.',
      '',
      `- date: ${new Date().toISOString()}; command: \`npm run bench:transcode${flags.length > 0 ? ` -- ${flags.join(' ')}` : ''}\`; load average (1 min) ${loadAtStart.toFixed(1)} at the start, ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)} during the throughput rounds, ${os.loadavg()[0]!.toFixed(1)} at the end`,
      `- nproc ${os.cpus().length} (${cpuModel}), node ${process.version}, sharp ${sharp.versions.sharp}, libvips ${sharp.versions.vips}; the machine was shared with other jobs`,
      `- settings: sharp.concurrency(1), sharp.cache(false), UV_THREADPOOL_SIZE ${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}, ` +
        `maxConcurrent ${DEFAULT_LIMITS.maxConcurrent}, maxQueued ${DEFAULT_LIMITS.maxQueued}, quality ladder ${DEFAULT_LIMITS.qualityLadder.join('/')}`,
      '',
      '### 12-MP JPEG → screen variant (320×240 JPEG, 30 kB budget)',
      '',
      `${opts.images} different 4000×3000 photo-like JPEGs (q90, avg ${kb(avgPhoto)} kB, half with EXIF orientation 6). ` +
        `Each path in its own process, ${opts.rounds} rounds of ${opts.jobsPerRound} jobs per path (order ABCDEF, FEDCBA, …), ${opts.concurrency} sharp jobs at a time; ` +
        'the role runs with its cache on and every request is a miss (fingerprint, lookup and write paid, no hit). ' +
        'Each job gets a fresh buffer with its input, as a fetched attachment arrives (one allocation and one 3 MB copy, the same in every path), ' +
        'and the role gets it handed over as the mail path does (moved over the in-process bus, not copied); ' +
        'the two "preloaded" rows are the method used before: every job reuses the input loaded at the start (so the role cannot take it over, and the bus copies it). ' +
        "Peak RSS is the child's VmHWM (the whole process, inputs included).",
      '',
      '| path | jobs | images/s | p50 ms | p99 ms | CPU-s / image | peak RSS MB | avg out kB |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      row(`sharp directly (same settings), ${opts.concurrency} in flight`, d),
      row(`transcoder role over in-process bus, ${opts.concurrency} in flight`, v),
      row(`same role, ${opts.concurrency * 2} requests in flight`, v2),
      row(`transcodeImage() without the bus, ${opts.concurrency} in flight`, p),
      row(`preloaded: sharp directly, ${opts.concurrency} in flight`, dPre),
      row(`preloaded: role, source copied by the bus, ${opts.concurrency} in flight`, vPre),
      '',
      `Throughput ratio role / direct: **${(v.rate / d.rate).toFixed(2)}** with ${opts.concurrency} in flight, ` +
        `**${(v2.rate / d.rate).toFixed(2)}** with ${opts.concurrency * 2} (target ≥ 0.90); ` +
        `CPU ratio direct / role (CPU-s per image): **${(d.cpu / v.cpu).toFixed(2)}** and ${(d.cpu / v2.cpu).toFixed(2)}. ` +
        `Preloaded (the method before): throughput ratio ${(vPre.rate / dPre.rate).toFixed(2)}, CPU ratio ${(dPre.cpu / vPre.cpu).toFixed(2)}. ` +
        `Role CPU overhead: ${((v.cpu - d.cpu) * 1000).toFixed(1)} ms per image; measured alone per ${kb(avgPhoto)} kB source, ` +
        `the cache key (GMAC fingerprint under the cache's secret key) ${hashMs.toFixed(2)} ms (sha256, used before, ${shaMs.toFixed(1)} ms; the cache is shared across devices, so the key must be collision resistant) ` +
        `and the bus copy a source not handed over would cost (encode + decode) ${codecMs.toFixed(1)} ms; the rest is the header read ` +
        '(sharp metadata, ~0.2 ms; also in the transcodeImage() row), the cache lookup and write (~0.3–0.5 ms, not fsynced: the cache is rebuildable), ' +
        'and the request/reply hops.',
      '',
      `When the cores are all busy (2 sharp jobs and the main thread on 2 cores, plus other jobs on a shared host), ` +
        `throughput follows the CPU ratio; the latency gap is the main thread's work per request ` +
        'waiting for a core while it sits on the critical path of the next job.',
      '',
      `### Memory: ${opts.memoryInputs} concurrent 24-MP inputs`,
      '',
      `${Math.ceil(opts.memoryInputs / 2)} × 6000×4000 JPEG (${kb(bigJpeg.length)} kB) and ${Math.floor(opts.memoryInputs / 2)} × 6000×4000 PNG (${kb(bigPng.length)} kB), ` +
        `each with different bytes, sent at once to a role with the default limits in a fresh process: ${mem.served} served, ` +
        `${mem.errors.length === 0 ? 'none refused' : `refused: ${mem.errors.join(', ')}`}, in ${(mem.wallMs / 1000).toFixed(1)} s. ` +
        `RSS ${mb(mem.before)} MB before (inputs loaded), peak ${mb(mem.peak)} MB: **+${mb(mem.peak - mem.before)} MB** ` +
        `(documented ceiling ${mb(memoryCeilingBytes(DEFAULT_LIMITS))} MB = 2 × maxQueuedBytes + maxConcurrent × 64 MB; ` +
        'most of it is the sources waiting in the queue: the bus message of each, decoded as a view, no second copy).',
      '',
      '### Bytes saved on a mixed set (screen variant 320×240, 30 kB budget)',
      '',
      '| kind | files | before kB | JPEG kB | saved | WebP kB | saved |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    let before = 0;
    let afterJ = 0;
    let afterW = 0;
    for (const [kind, k] of kinds) {
      lines.push(
        `| ${kind} | ${k.n} | ${kb(k.before)} | ${kb(k.jpeg)} | ${pct(k.jpeg, k.before)} | ${kb(k.webp)} | ${pct(k.webp, k.before)} |`,
      );
      before += k.before;
      afterJ += k.jpeg;
      afterW += k.webp;
    }
    lines.push(
      `| **total** | ${mixed.length} | ${kb(before)} | ${kb(afterJ)} | ${pct(afterJ, before)} | ${kb(afterW)} | ${pct(afterW, before)} |`,
      '',
      'The animated GIF stays animated in WebP (the handset animates); JPEG gets its first frame.',
      '',
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const section = lines.join('\n');
  process.stdout.write(`${section}\n`);
  if (opts.write) {
    const file = join(root, 'test/bench/RESULTS.md');
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {}
    const start = text.search(/^## Transcoder\s*$/m);
    if (start === -1) {
      text = `${text.replace(/\s*$/, '')}${text.length > 0 ? '\n\n' : ''}${section}`;
    } else {
      const rest = text.slice(start + 1);
      const nextHeading = rest.search(/^## (?!#)/m);
      // Hand-written "### Notes …" at the end of the old section (analysis, history) stay.
      const old = nextHeading === -1 ? rest : rest.slice(0, nextHeading);
      const notesAt = old.search(/^### Notes/m);
      const notes = notesAt === -1 ? '' : `\n${old.slice(notesAt).replace(/\s*$/, '')}\n`;
      text =
        text.slice(0, start) + section + notes + (nextHeading === -1 ? '' : `\n${rest.slice(nextHeading)}`);
    }
    writeFileSync(file, text);
    log(`section "## Transcoder" written to ${file}`);
  }
}

const childPath = args.get('child') as Path | undefined;
const entry =
  childPath !== undefined ? child(childPath, args.get('dir')!, Number(args.get('offset') ?? 0)) : main();
entry.then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
