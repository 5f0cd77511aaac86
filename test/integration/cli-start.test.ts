import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { uwsUnavailable } from '../../server/edge/engines/uws-binary.ts';
import { eventually } from '../../testing/index.ts';
import { MMGW_BIN, provisionDevice, runMmgw, startGateway } from '../harness/gateway.ts';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-start-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('mmgw start', () => {
  test('with the defaults in a fresh directory (as `npm start`): data under ./data, /healthz answers, SIGINT exits 0', async (t) => {
    const cwd = tempDir(t);
    // The default ports (8080/8081) may be taken on a shared machine: only the ports come from the environment.
    const child = spawn(process.execPath, [MMGW_BIN, 'start'], {
      cwd,
      env: { ...process.env, MMGW_PORT: '0', MMGW_ADMIN_PORT: '0', MMGW_LOG_LEVEL: 'info', MMGW_DATA: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.after(() => child.kill('SIGKILL'));
    const lines: string[] = [];
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const started = await new Promise<{ adminPort: number; devicePort: number }>((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (d) => {
        buf += d;
        const parts = buf.split('\n');
        buf = parts.pop() ?? '';
        for (const line of parts) {
          lines.push(line);
          const rec = JSON.parse(line);
          if (rec.msg === 'node started') resolve(rec);
        }
      });
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
    });
    const res = await fetch(`http://127.0.0.1:${started.adminPort}/healthz`);
    assert.deepEqual(await res.json(), { status: 'ok' });
    assert.ok(started.devicePort > 0);
    assert.ok(statSync(join(cwd, 'data', 'registry')).isDirectory());
    // Only the gateway may read its data: files 0600 in 0700 directories (lmdb creates them 0644).
    assert.equal(statSync(join(cwd, 'data')).mode & 0o777, 0o700);
    for (const file of ['registry/data.mdb', 'registry/lock.mdb', 'transport/data.mdb', 'records/data.mdb'])
      assert.equal(statSync(join(cwd, 'data', file)).mode & 0o777, 0o600, file);
    assert.equal(statSync(join(cwd, 'data', 'transport')).mode & 0o777, 0o700);
    const key = join(cwd, 'data', 'keys', 'jwt.key');
    assert.equal(statSync(key).mode & 0o777, 0o600);
    const keyText = readFileSync(key, 'utf8').trim();
    assert.ok(lines.some((l) => l.includes(`generated a JWT key at ${key}`)));
    assert.ok(!lines.some((l) => l.includes(keyText)), 'the key itself is never logged');
    // On a Node the pinned uWebSockets.js has no binary for (Node 24), the edge says so and runs portable.
    const fellBack = lines.some((l) => l.includes('the edge uses the portable engine'));
    assert.equal(fellBack, uwsUnavailable() !== undefined);

    const code = await new Promise<number | null>((resolve) => {
      child.once('exit', resolve);
      child.kill('SIGINT');
    });
    assert.equal(code, 0);
  });

  test('on a terminal: a banner with the addresses and the first-admin command; admin bound to loopback', async (t) => {
    const cwd = tempDir(t);
    // `script` gives the gateway a pseudo-terminal as stdout, as a person's shell would.
    const command = `exec ${process.execPath} ${MMGW_BIN} start --port 0 --admin-port 0`;
    const child = spawn('script', ['-qfec', command, '/dev/null'], {
      cwd,
      env: { ...process.env, MMGW_LOG_LEVEL: 'warn', MMGW_DATA: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    await eventually('the banner', () => /admin user add[^\n]*\n/.test(out), { timeoutMs: 30_000 });
    const text = out.replace(/\r/g, '');
    const data = join(cwd, 'data');
    assert.match(text, /mmgw \S+ is up: node \S+, roles admin, transport, transcoder, edge\n/);
    const device = /devices {3}ws:\/\/localhost:(\d+)\/v1\/ws/.exec(text);
    const admin = /admin UI {2}http:\/\/127\.0\.0\.1:(\d+)\/ui\//.exec(text);
    assert.ok(device && admin, text);
    assert.ok(text.includes(`data      ${data}\n`), text);
    assert.ok(text.includes(`npx mmgw admin user add --name admin --role admin --data ${data}`), text);
    // The admin port listens on loopback only; the device port on every address.
    const listening = (port: string) =>
      execFileSync('ss', ['-ltnH', `sport = :${port}`], { encoding: 'utf8' })
        .trim()
        .split(/\s+/)[3];
    assert.equal(listening(admin[1] as string), `127.0.0.1:${admin[1]}`);
    assert.equal(listening(device[1] as string), `0.0.0.0:${device[1]}`);
  });

  test('a bad config stops the start with a message naming the key, exit 2', async (t) => {
    const dir = tempDir(t);
    const bad = await runMmgw(['start', '--port', 'abc', '--data', dir]);
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr, 'mmgw: config: port: expected a number 0–65535, got "abc" (from flag --port)\n');

    const file = join(dir, 'mmgw.json');
    writeFileSync(file, JSON.stringify({ edge: { heartbeatMs: 'abc' }, colour: 'blue' }));
    const fromFile = await runMmgw(['start', '--config', file]);
    assert.equal(fromFile.code, 2);
    assert.match(fromFile.stderr, /config: edge\.heartbeatMs: expected a number ≥ 1000, got "abc"/);
    assert.match(fromFile.stderr, /config: colour: unknown key/);

    const role = await runMmgw(['start', '--role', 'edge,router', '--data', dir], {
      env: { MMGW_PORT: '0' },
    });
    assert.equal(role.code, 2);
    assert.match(
      role.stderr,
      /config: roles\.1: expected one of all, edge, transport, transcoder, admin, got "router"/,
    );
  });

  test('a port in use is named, exit 2', async (t) => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    t.after(() => blocker.close());
    const port = (blocker.address() as { port: number }).port;
    const dir = tempDir(t);
    const res = await runMmgw(
      ['start', '--port', '0', '--admin-port', String(port), '--host', '127.0.0.1', '--data', dir],
      {
        env: { MMGW_LOG_LEVEL: 'silent' },
      },
    );
    assert.equal(res.code, 2);
    assert.equal(res.stderr, `mmgw: admin port ${port} is already in use\n`);
  });

  test('a second gateway on the same data directory stops at once, naming the first', async (t) => {
    const dataDir = tempDir(t);
    const gw = await startGateway({ dataDir });
    t.after(() => gw.stop());
    const second = await runMmgw(
      ['start', '--data', gw.dataDir, '--port', '0', '--admin-port', '0', '--host', '127.0.0.1'],
      { env: { MMGW_LOG_LEVEL: 'silent' } },
    );
    assert.equal(second.code, 2);
    assert.match(
      second.stderr,
      new RegExp(
        `^mmgw: The data directory ${gw.dataDir} is in use by another gateway \\(pid ${gw.pid}, since [^)]+\\); stop it first, or start this one with another --data\\.\n$`,
      ),
    );
    // The first one did not notice.
    assert.equal((await fetch(`${gw.adminUrl}/readyz`)).status, 200);
    assert.equal(await gw.stop(), 0);
    // Stopped, it let go of the directory: the next gateway starts there.
    const next = await startGateway({ dataDir });
    assert.equal(await next.stop(), 0);
  });

  test('the CLI provisions into a running gateway, and the handset connects with that secret', async (t) => {
    const gw = await startGateway({ env: { MMGW_LOG_LEVEL: 'debug' } });
    t.after(() => gw.stop());
    const { imei, secret } = await provisionDevice(gw.dataDir);
    const handset = await runMmgw(
      ['handset', '--url', gw.url, '--imei', imei, '--secret', secret, '--json', '--transport', 'ws'],
      {
        input: '{"id":"1","cmd":"ping"}\n',
      },
    );
    const events = handset.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(events[0]?.event, 'connected', handset.stdout + handset.stderr);
    assert.ok(
      events.some((e) => e.id === '1' && e.event === 'pong'),
      handset.stdout,
    );

    // Disabled from the CLI while the gateway runs: the next login is refused.
    assert.equal((await runMmgw(['device', 'disable', imei, '--data', gw.dataDir])).code, 0);
    const refused = await runMmgw(
      ['handset', '--url', gw.url, '--imei', imei, '--secret', secret, '--json', '--transport', 'ws'],
      { input: '{"id":"2","cmd":"ping"}\n' },
    );
    assert.notEqual(refused.code, 0);
    assert.ok(refused.stdout.includes('"code":"auth.disabled"'), refused.stdout);

    assert.equal(await gw.stop(), 0);
    // Nothing secret reached the logs, even at debug level.
    const logs = gw.stdout.join('\n');
    assert.ok(logs.includes(imei), 'the device was logged');
    assert.ok(!logs.includes(secret), 'the device secret was logged');
  });
});
