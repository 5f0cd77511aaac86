/**
 * The README's tour, run (issue 13: every README example matches the real
 * output). The gateway starts as `npm start` does, on a terminal (under
 * script(1), so that it prints its banner), in a fresh directory whose ./data
 * is its data; then each block marked `<!-- readme-test: NAME -->` runs there
 * in bash, command by command, and each output and exit code is compared with
 * what the README shows (testing/readme-examples.ts: `…` and `<…>` match
 * anything, sizes and timings any number).
 *
 * What the test puts in: `npx mmgw` is `node bin/mmgw.js` (what npx runs here,
 * without npm's start-up for every command); the README's ports 8080 and 8081
 * are the gateway's, free ones; `/path/to/data` is its data directory;
 * `<secret>` is the first secret a step printed (the provisioning step's). A step that sets a
 * variable (`TOKEN=$(curl …)`) passes it on to the steps after it,
 * as one shell would: it must not be empty or `null` (jq's answer to an error).
 * A step `npx mmgw start --opt value…` (the TLS section's) stops the gateway
 * and starts it again with those options, on the same data and free ports.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { eventually } from '../../testing/index.ts';
import { outputMismatch, type ReadmeBlock, readmeBlocks } from '../../testing/readme-examples.ts';
import { MMGW_BIN, ROOT } from '../harness/gateway.ts';

const blocks = readmeBlocks(readFileSync(join(ROOT, 'README.md'), 'utf8'));
/** The marked blocks, in the README's order, as this test runs them. */
const TOUR = [
  'provision',
  'handset-refused',
  'handset-json',
  'manage',
  'admin-api',
  'service-profile',
  'transcode',
  'registry',
  'tls',
  'ops-client-ca',
];
/** A step that sets a shell variable (`TOKEN=$(…)`): later steps of its block see its value. */
const ASSIGNMENT = /^([A-Za-z_]\w*)=/;
/** A step that starts the gateway (with other options): the test restarts its gateway so. */
const RESTART = /^npx mmgw start((?: --[a-z-]+ [\w.-]+)*)$/;

function block(name: string): ReadmeBlock {
  const b = blocks.get(name);
  assert.ok(b, `the README has no block marked readme-test: ${name}`);
  return b;
}

interface Ready {
  pid: number;
  devicePort: number;
  adminPort: number;
}

describe('the README tour, run', () => {
  let dir: string;
  let data: string;
  let terminal: ChildProcess | undefined;
  let screen = '';
  let ready: Ready;
  let secret: string | undefined;
  /** Shell variables the steps set so far. */
  const vars: Record<string, string> = {};

  const ports = (text: string) =>
    text.replaceAll(':8080', `:${ready.devicePort}`).replaceAll(':8081', `:${ready.adminPort}`);
  const shown = (lines: string[]) => lines.map((l) => ports(l).replaceAll('/path/to/data', data));

  /** `npx mmgw start ARGS` on a terminal, in `dir`, on free ports; until its ready file says it is up. */
  async function start(args: string): Promise<void> {
    // `npm start` is `node bin/mmgw.js start`; any free ports instead of 8080 and 8081.
    const readyFile = join(dir, 'ready.json');
    rmSync(readyFile, { force: true });
    screen = '';
    const command = `exec ${process.execPath} ${MMGW_BIN} start ${args} --port 0 --admin-port 0 --ready-file ${readyFile}`;
    const term = spawn('script', ['-qfec', command, '/dev/null'], {
      cwd: dir,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    terminal = term;
    term.stdout?.setEncoding('utf8').on('data', (d: string) => (screen += d));
    ready = await eventually(
      'the gateway is up',
      () => {
        assert.equal(term.exitCode, null, `the gateway stopped: ${screen}`);
        try {
          return JSON.parse(readFileSync(readyFile, 'utf8')) as Ready;
        } catch {
          return undefined;
        }
      },
      { timeoutMs: 90_000, intervalMs: 100 },
    );
  }

  /** SIGTERM to the gateway, until it is gone (SIGKILL after 30 s). */
  async function stop(): Promise<void> {
    const term = terminal;
    if (ready) {
      try {
        process.kill(ready.pid, 'SIGTERM');
      } catch {}
    }
    if (term && term.exitCode === null) {
      const pid = ready?.pid;
      const guard = setTimeout(() => {
        try {
          if (pid) process.kill(pid, 'SIGKILL');
        } catch {}
        term.kill('SIGKILL');
      }, 30_000);
      await new Promise((resolve) => term.once('exit', resolve));
      clearTimeout(guard);
    }
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mmgw-readme-'));
    data = join(dir, 'data');
    assert.deepEqual(
      block('start').steps.map((s) => s.command),
      ['npm start'],
    );
    await start('');
  });

  after(async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('every marked block is run here', () => {
    assert.deepEqual([...blocks.keys()].sort(), ['start', 'start-banner', ...TOUR].sort());
  });

  test('npm start prints the banner the README shows', async () => {
    const expected = shown(block('start-banner').text);
    // The banner: what the terminal shows before the first JSON log line.
    const banner = await eventually('the banner', () => {
      const lines = screen.split(/\r?\n/);
      const end = lines.findIndex((l) => l.startsWith('{'));
      const text = (end < 0 ? lines : lines.slice(0, end)).join('\n');
      return text.split('\n').filter((l) => l.trim() !== '').length >= expected.length && text;
    });
    assert.equal(outputMismatch(expected, banner), undefined, outputMismatch(expected, banner));
  });

  for (const name of TOUR) {
    test(`${name}: each command's output and exit code as shown`, async () => {
      if (name === 'transcode') await photo(join(dir, 'photo.jpg'));
      for (const step of block(name).steps) {
        assert.ok(!step.command.includes('<secret>') || secret, 'a secret was printed before');
        const restart = RESTART.exec(step.command)?.[1];
        if (restart !== undefined) {
          // The gateway of the tour stops, and starts again as the README says, on the same data.
          await stop();
          await start(restart);
          continue;
        }
        const assigned = ASSIGNMENT.exec(step.command)?.[1];
        const command = ports(step.command)
          .replaceAll('npx mmgw', `${process.execPath} ${MMGW_BIN}`)
          .replaceAll('<secret>', secret ?? '');
        const r = spawnSync('bash', ['-c', assigned ? `${command}\nprintf %s "$${assigned}"` : command], {
          cwd: dir,
          encoding: 'utf8',
          timeout: 60_000,
          env: { ...process.env, ...vars },
        });
        const where = `README line ${block(name).line}, ${step.command}`;
        assert.equal(r.status, step.exitCode, `${where}: exit ${r.status}\n${r.stdout}${r.stderr}`);
        if (assigned) {
          assert.ok(
            !['', 'null'].includes(r.stdout),
            `${where}: ${assigned} is ${r.stdout || 'empty'}\n${r.stderr}`,
          );
          vars[assigned] = r.stdout;
          continue;
        }
        if (step.expected.length > 0) {
          const why = outputMismatch(shown(step.expected), r.stdout + r.stderr);
          assert.equal(why, undefined, `${where}: ${why}`);
        }
        try {
          secret ??= (JSON.parse(r.stdout) as { secret?: string }).secret;
        } catch {}
      }
    });
  }
});

/** A 4000×3000 photo-sized JPEG (a gradient with detail, a few MB). */
async function photo(file: string): Promise<void> {
  const [width, height] = [4000, 3000];
  const pixels = Buffer.alloc(width * height * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 7 + Math.floor(i / 3000)) & 255;
  await sharp(pixels, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 92 })
    .toFile(file);
}
