/**
 * Measures the memory of a transcoder role under load in a fresh process:
 * `node --expose-gc --import tsx test/harness/transcoder-memory-probe.ts DIR` sends every
 * file in DIR at once to a role with the default limits and prints
 * `{before, peak, wallMs, served, errors}` as JSON. Used by memory.test.ts and
 * by the benchmark; a fresh process, because RSS in a process that made the
 * inputs says more about the allocator than about the transcoder.
 * A script, not a module: import only its type.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus } from '../../server/bus/inproc.ts';
import { TranscoderClient } from '../../transcoder/protocol.ts';
import { startTranscoder } from '../../transcoder/role.ts';

export interface MemoryProbeResult {
  before: number;
  peak: number;
  wallMs: number;
  served: number;
  errors: string[];
}

async function probe(dir: string): Promise<MemoryProbeResult> {
  const inputs = readdirSync(dir)
    .sort()
    .map((f) => readFileSync(join(dir, f)));
  const dataDir = mkdtempSync(join(tmpdir(), 'mmgw-transcoder-probe-'));
  const bus = new InProcessBus();
  const role = await startTranscoder({ bus, dataDir });
  const client = new TranscoderClient(bus, { timeoutMs: 300_000 });
  try {
    (globalThis as { gc?: () => void }).gc?.();
    const before = process.memoryUsage.rss();
    let peak = before;
    const timer = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage.rss());
    }, 5);
    const t0 = performance.now();
    const settled = await Promise.allSettled(
      inputs.map((input) =>
        client.image(input, { width: 320, height: 240, format: 'jpeg', maxBytes: 30_000 }),
      ),
    );
    const wallMs = performance.now() - t0;
    clearInterval(timer);
    // Sampled, not getrusage's maxRSS: on Linux that high-water mark survives exec, so a
    // child would report its parent's peak.
    peak = Math.max(peak, process.memoryUsage.rss());
    const errors = settled
      .filter((s): s is PromiseRejectedResult => s.status === 'rejected')
      .map((s) => (s.reason as { code?: string }).code ?? String(s.reason));
    return { before, peak, wallMs, served: settled.length - errors.length, errors };
  } finally {
    await role.stop();
    await bus.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

probe(process.argv[2] ?? '.').then(
  (r) => {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(0);
  },
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
