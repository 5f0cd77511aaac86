/**
 * `mmgw handset --json` against a real gateway process: the JSON-lines
 * vocabulary of docs/handset-json.md over both carriers, a session switch,
 * pushes, and every auth refusal with its exit code.
 */

import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import {
  type Gateway,
  MMGW_BIN,
  nextImei,
  provisionDevice,
  ROOT,
  runMmgw,
  startGateway,
} from '../harness/gateway.ts';
import { freePort } from '../harness/nats.ts';

type Line = Record<string, any>;

interface CliHandset {
  lines: Line[];
  send(obj: unknown): void;
  sendRaw(text: string): void;
  /** Resolves with the first line (from index `from`) matching; rejects after a generous timeout. */
  waitFor(what: string, match: (l: Line) => boolean, from?: number): Promise<Line>;
  end(): void;
  exit: Promise<number | null>;
  stderr(): string;
}

const live = new Set<ChildProcessWithoutNullStreams>();

function spawnHandset(
  url: string,
  imei: string,
  secret: string,
  transport: string,
  extra: string[] = [],
): CliHandset {
  const child = spawn(
    process.execPath,
    [
      MMGW_BIN,
      'handset',
      '--json',
      '--url',
      url,
      '--imei',
      imei,
      '--secret',
      secret,
      '--transport',
      transport,
      ...extra,
    ],
    { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env } },
  );
  live.add(child);
  const lines: Line[] = [];
  let rest = '';
  let err = '';
  const waiters = new Set<() => void>();
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop() ?? '';
    for (const p of parts) if (p.trim() !== '') lines.push(JSON.parse(p));
    for (const w of waiters) w();
  });
  child.stderr.on('data', (d) => (err += d));
  const exit = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      live.delete(child);
      for (const w of waiters) w();
      resolve(code);
    }),
  );
  return {
    lines,
    send: (obj) => child.stdin.write(`${JSON.stringify(obj)}\n`),
    sendRaw: (text) => child.stdin.write(text),
    end: () => child.stdin.end(),
    exit,
    stderr: () => err,
    waitFor(what, match, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = lines.slice(from).find(match);
          if (found) {
            cleanup();
            resolve(found);
          } else if (child.exitCode !== null) {
            cleanup();
            reject(
              new Error(
                `handset exited (${child.exitCode}) before ${what}; lines: ${JSON.stringify(lines)} ${err}`,
              ),
            );
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for ${what}; lines: ${JSON.stringify(lines)} ${err}`));
        }, 30_000);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
}

describe('mmgw handset --json against a gateway', () => {
  let gw: Gateway;

  before(async () => {
    gw = await startGateway({ env: { MMGW_LOG_LEVEL: 'warn' } });
  });
  after(async () => {
    for (const child of live) child.kill('SIGKILL');
    await gw?.stop();
  });

  for (const transport of ['ws', 'poll'] as const) {
    test(`speaks the vocabulary over ${transport} and switches carrier within the session`, async () => {
      const { imei, secret } = await provisionDevice(gw.dataDir);
      const h = spawnHandset(gw.url, imei, secret, transport);
      const connected = await h.waitFor('connected', (l) => l.event === 'connected');
      assert.equal(h.lines[0], connected, 'connected is the first line');
      assert.equal(connected.transport, transport);
      assert.equal(connected.resumed, false);
      assert.equal(typeof connected.session, 'string');

      h.send({ id: '1', cmd: 'ping' });
      const pong = await h.waitFor('pong', (l) => l.id === '1');
      assert.equal(pong.event, 'pong');
      assert.equal(typeof pong.rttMs, 'number');

      const body = { text: 'hi', n: 42, list: [1, null, true], raw: { $base64: 'AAEC/w==' } };
      h.send({ id: '2', cmd: 'request', method: 'sys.echo', body });
      assert.deepEqual(await h.waitFor('echo', (l) => l.id === '2'), { id: '2', event: 'response', body });

      h.sendRaw('this is not json\n');
      await h.waitFor('bad input error', (l) => l.event === 'error' && l.code === 'request.bad_input');
      h.send({ id: '3', cmd: 'request', method: 'no.such.method' });
      const unknown = await h.waitFor('unknown method', (l) => l.id === '3');
      assert.equal(unknown.event, 'error');
      assert.equal(unknown.code, 'request.unknown_method');

      const other = transport === 'ws' ? 'poll' : 'ws';
      const mark = h.lines.length;
      h.send({ id: '4', cmd: 'switch', transport: other });
      assert.deepEqual(await h.waitFor('switched', (l) => l.id === '4'), {
        id: '4',
        event: 'switched',
        transport: other,
      });
      const moved = await h.waitFor('connected again', (l) => l.event === 'connected', mark);
      assert.deepEqual(moved, {
        event: 'connected',
        session: connected.session,
        transport: other,
        resumed: true,
        url: gw.url,
      });
      h.send({ id: '5', cmd: 'request', method: 'sys.echo', body: `over ${other}` });
      assert.equal((await h.waitFor('echo after switch', (l) => l.id === '5')).body, `over ${other}`);

      h.send({ cmd: 'quit' });
      assert.equal(await h.exit, 0);
      assert.ok(
        !h.lines.some((l) => l.event === 'disconnected' && l.willReconnect === true),
        'no carrier was lost',
      );
    });
  }

  test('pushes arrive once each, in order, as push lines', async () => {
    const { imei, secret } = await provisionDevice(gw.dataDir);
    const h = spawnHandset(gw.url, imei, secret, 'auto');
    await h.waitFor('connected', (l) => l.event === 'connected');
    h.send({ id: 's', cmd: 'request', method: 'sys.stream', body: { count: 20, from: 1 } });
    await h.waitFor('stream accepted', (l) => l.id === 's' && l.event === 'response');
    await h.waitFor('20 ticks', (l) => l.event === 'push' && l.body?.n === 20);
    h.end(); // end of input = quit
    assert.equal(await h.exit, 0);
    const ticks = h.lines.filter((l) => l.event === 'push' && l.name === 'sys.tick');
    assert.deepEqual(
      ticks.map((l) => l.body.n),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    const seqs = ticks.map((l) => l.seq);
    assert.deepEqual(
      seqs,
      [...seqs].sort((a, b) => a - b),
    );
    assert.equal(new Set(seqs).size, seqs.length);
  });

  test('--url repeated: a URL that refuses connections is passed over for the next', async () => {
    const { imei, secret } = await provisionDevice(gw.dataDir);
    const down = `ws://127.0.0.1:${await freePort()}`;
    const h = spawnHandset(down, imei, secret, 'ws', ['--url', gw.url]);
    const retry = await h.waitFor('reconnecting', (l) => l.event === 'reconnecting');
    assert.equal(retry.url, gw.url);
    const connected = await h.waitFor('connected', (l) => l.event === 'connected');
    assert.equal(connected.url, gw.url);
    h.send({ id: 'p', cmd: 'ping' });
    await h.waitFor('pong', (l) => l.id === 'p' && l.event === 'pong');
    h.end();
    assert.equal(await h.exit, 0);
  });

  test('frames are compressed unless --no-compression (the gateway counts the live contexts)', async () => {
    const contexts = async () => {
      const text = await (await fetch(`${gw.adminUrl}/metrics`)).text();
      return Number(/^mmgw_edge_compression_contexts(?:\{[^}]*\})? (\d+)$/m.exec(text)?.[1] ?? Number.NaN);
    };
    for (const [extra, expected] of [
      [['--no-compression'], 0],
      [[], 2],
    ] as const) {
      const { imei, secret } = await provisionDevice(gw.dataDir);
      const h = spawnHandset(gw.url, imei, secret, 'ws', [...extra]);
      await h.waitFor('connected', (l) => l.event === 'connected');
      h.send({
        id: 'e',
        cmd: 'request',
        method: 'sys.echo',
        body: 'a body long enough to be worth compressing',
      });
      await h.waitFor('echo', (l) => l.id === 'e');
      assert.equal(await contexts(), expected, `handset ${extra.join(' ') || '(default)'}`);
      h.send({ cmd: 'quit' });
      assert.equal(await h.exit, 0);
    }
  });

  test('refusals are typed errors and exit code 2', async () => {
    const { imei, secret } = await provisionDevice(gw.dataDir);
    const cases: Array<[string, string, string]> = [
      ['auth.bad_secret', imei, 'wrong-secret'],
      ['auth.unknown_device', nextImei(), secret],
    ];
    for (const [code, who, pass] of cases) {
      for (const transport of ['ws', 'poll']) {
        const r = await runMmgw([
          'handset',
          '--json',
          '--url',
          gw.url,
          '--imei',
          who,
          '--secret',
          pass,
          '--transport',
          transport,
        ]);
        const lines = r.stdout
          .split('\n')
          .filter((l) => l !== '')
          .map((l) => JSON.parse(l));
        assert.equal(r.code, 2, `${code} over ${transport}: ${r.stdout} ${r.stderr}`);
        assert.ok(
          lines.some((l) => l.event === 'error' && l.code === code),
          `${code} over ${transport}: ${r.stdout}`,
        );
      }
    }
    const disabled = await runMmgw(['device', 'disable', imei, '--data', gw.dataDir]);
    assert.equal(disabled.code, 0, disabled.stderr);
    const r = await runMmgw(['handset', '--json', '--url', gw.url, '--imei', imei, '--secret', secret]);
    assert.equal(r.code, 2);
    assert.match(r.stdout, /"event":"error","code":"auth\.disabled"/);
  });
});
