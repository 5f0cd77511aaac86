/**
 * A real Prometheus (Debian's `prometheus` package) for one test: a generated
 * config scraping the given targets, the rule files given, on a free loopback
 * port, its TSDB in a temporary directory; stopped by pid (SIGTERM, then
 * SIGKILL), also when the test process exits without cleaning up. promtool
 * runs the same way (promtool()).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { eventually } from '../../testing/index.ts';
import { freePort, killOnExit, waitExit } from './nats.ts';

const run = promisify(execFile);
const INSTALL = 'install it with `bash scripts/install-peers.sh` (Debian package prometheus)';

function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // next directory
    }
  }
  return undefined;
}

/** Why Prometheus tests cannot run here (a message for t.skip), or undefined when they can. */
export function missingPrometheus(): string | undefined {
  const missing = ['prometheus', 'promtool'].filter((b) => findBinary(b) === undefined);
  return missing.length === 0 ? undefined : `${missing.join(' and ')} not found: ${INSTALL}`;
}

/** Runs promtool with `args` in `cwd`; resolves with its output, rejects with it on a non-zero exit. */
export async function promtool(args: string[], cwd: string): Promise<string> {
  const bin = findBinary('promtool');
  if (!bin) throw new Error(`promtool not found: ${INSTALL}`);
  try {
    const { stdout, stderr } = await run(bin, args, { cwd, timeout: 60_000 });
    return stdout + stderr;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`promtool ${args.join(' ')} failed: ${e.stdout ?? ''}${e.stderr ?? ''}${e.message}`);
  }
}

export interface PrometheusOptions {
  /** host:port of every target of the job. */
  targets: string[];
  /** Job name (default "mmgw", as the shipped rules expect). */
  job?: string;
  /** Rule files: name → YAML text, written beside the config. */
  rules?: Record<string, string>;
  /** Default "1s". */
  scrapeInterval?: string;
  /** Default "1s". */
  evaluationInterval?: string;
}

export interface PrometheusAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
  value: string;
}

export interface Prometheus {
  url: string;
  pid: number;
  /** GET /api/v1/<path> → data. */
  api<T>(path: string): Promise<T>;
  alerts(): Promise<PrometheusAlert[]>;
  /** Resolves once every target was scraped up at least once. */
  targetsUp(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startPrometheus(opts: PrometheusOptions): Promise<Prometheus> {
  const bin = findBinary('prometheus');
  if (!bin) throw new Error(`prometheus not found: ${INSTALL}`);
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-prometheus-'));
  const job = opts.job ?? 'mmgw';
  for (const [name, text] of Object.entries(opts.rules ?? {})) writeFileSync(join(dir, name), text);
  writeFileSync(
    join(dir, 'prometheus.yml'),
    stringify({
      global: {
        scrape_interval: opts.scrapeInterval ?? '1s',
        scrape_timeout: '1s',
        evaluation_interval: opts.evaluationInterval ?? '1s',
      },
      rule_files: Object.keys(opts.rules ?? {}),
      scrape_configs: [{ job_name: job, static_configs: [{ targets: opts.targets }] }],
    }),
  );
  const port = await freePort();
  const child: ChildProcess = spawn(
    bin,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const forget = killOnExit(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString('utf8')).slice(-4000);
  });
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid as number, 'SIGTERM');
      if (!(await waitExit(child, 5000))) {
        process.kill(child.pid as number, 'SIGKILL');
        await waitExit(child, 5000);
      }
    }
    forget();
    rmSync(dir, { recursive: true, force: true });
  };
  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}/api/v1/${path}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error ?? res.status}`);
    return body.data;
  };
  try {
    await eventually(
      'prometheus ready',
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited: ${stderr}`);
        return (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok === true;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url,
    pid: child.pid as number,
    api,
    alerts: async () => (await api<{ alerts: PrometheusAlert[] }>('alerts')).alerts,
    async targetsUp(timeoutMs = 30_000) {
      await eventually(
        'every target scraped up',
        async () => {
          const t = await api<{ activeTargets: Array<{ health: string }> }>('targets');
          return (
            t.activeTargets.length === opts.targets.length && t.activeTargets.every((x) => x.health === 'up')
          );
        },
        { timeoutMs, intervalMs: 200 },
      );
    },
    stop,
  };
}
