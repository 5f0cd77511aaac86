/**
 * TLS on a real gateway (`mmgw start --tls-cert --tls-key --ops-client-ca`,
 * two edge workers) with real TLS clients and a private CA made with openssl:
 * the Handset SDK over wss:// and https:// long-poll with `ca`, `mmgw handset
 * --ca`, `openssl s_client` (TLS 1.1 refused, 1.2 and 1.3 served; after
 * SIGHUP the new certificate on both ports while a session stays up), and the
 * ops endpoint with and without a client certificate.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import { Handset } from '../../device-protocol/index.ts';
import { eventually, makeTestCa, type TestCa } from '../../testing/index.ts';
import { type Gateway, provisionDevice, runMmgw, startGateway } from '../harness/gateway.ts';

interface SClient {
  ok: boolean;
  protocol?: string;
  /** The common name of the certificate the server showed. */
  peer?: string;
  output: string;
}

/** `openssl s_client` to 127.0.0.1:port with these extra flags, verifying against the CA; stdin closed at once. */
function sClient(port: number, caFile: string, flags: string[]): Promise<SClient> {
  return new Promise((resolve) => {
    const child = execFile(
      'openssl',
      [
        's_client',
        '-connect',
        `127.0.0.1:${port}`,
        '-CAfile',
        caFile,
        '-verify_return_error',
        '-brief',
        ...flags,
      ],
      { timeout: 20_000 },
      (err, stdout, stderr) => {
        const output = `${stdout}\n${stderr}`;
        resolve({
          ok: err === null && /Verification: OK/.test(output),
          ...(/Protocol version: (\S+)/.exec(output)?.[1]
            ? { protocol: /Protocol version: (\S+)/.exec(output)![1] }
            : {}),
          ...(/Peer certificate: .*CN ?= ?([\w-]+)/.exec(output)?.[1]
            ? { peer: /Peer certificate: .*CN ?= ?([\w-]+)/.exec(output)![1] }
            : {}),
          output,
        });
      },
    );
    child.stdin?.end();
  });
}

/** Lets an OpenSSL 3 client offer TLS 1.1 at all (its default security level refuses it by itself). */
const TLS11 = ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0'];

interface Answer {
  status: number;
  body: string;
  authorized?: boolean;
}

/** GET over HTTPS with node:https, trusting the test CA, with an optional client certificate. */
function httpsGet(url: string, ca: string, client?: { cert: string; key: string }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, ...client, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('TLS on the device and admin ports', () => {
  let ca: TestCa;
  let rogue: TestCa;
  let gw: Gateway;
  let dir: string;
  const live = { cert: '', key: '' };
  const handsets: Handset[] = [];

  before(async () => {
    ca = makeTestCa();
    rogue = makeTestCa('rogue CA');
    dir = mkdtempSync(join(tmpdir(), 'mmgw-tls-'));
    const first = ca.server('gw-first');
    live.cert = join(dir, 'gw.pem');
    live.key = join(dir, 'gw.key');
    copyFileSync(first.cert, live.cert);
    copyFileSync(first.key, live.key);
    gw = await startGateway({
      args: ['--tls-cert', live.cert, '--tls-key', live.key, '--ops-client-ca', ca.cert],
      // The engine line and the reloads are read from the log.
      env: { MMGW_LOG_LEVEL: 'info' },
    });
  });

  after(async () => {
    for (const h of handsets) await h.close().catch(() => {});
    await gw?.stop();
    ca?.remove();
    rogue?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function handset(
    device: { imei: string; secret: string },
    transport: 'ws' | 'poll',
    trust = ca.pem(ca.cert),
  ) {
    const url = transport === 'ws' ? gw.url : gw.url.replace(/^wss:/, 'https:');
    const h = new Handset({ url, imei: device.imei, secret: device.secret, transport, WebSocket, ca: trust });
    handsets.push(h);
    return h;
  }

  test('the edge says it serves TLS with the portable engine; uws with TLS is refused at start', async () => {
    assert.ok(gw.url.startsWith('wss://'));
    assert.ok(
      gw.stdout.some((l) => l.includes('the edge serves TLS with the portable engine')),
      'log line about the engine',
    );
    const refused = await runMmgw([
      'start',
      '--engine',
      'uws',
      '--tls-cert',
      live.cert,
      '--tls-key',
      live.key,
      '--data',
      join(dir, 'unused'),
    ]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /engine: the uws engine cannot serve TLS/);
  });

  for (const transport of ['ws', 'poll'] as const) {
    test(`the SDK over ${transport === 'ws' ? 'wss://' : 'https:// long-poll'} with ca`, async () => {
      const device = await provisionDevice(gw.dataDir);
      const h = handset(device, transport);
      const welcome = await h.connect();
      assert.ok(welcome.sessionId);
      assert.equal(h.transport, transport);
      assert.deepEqual(await h.request('sys.echo', { over: transport }), { over: transport });
      await h.close();
    });
  }

  test('without the CA the gateway is not trusted (ws and fetch refuse its certificate)', async () => {
    const error = await new Promise<Error>((resolve) => {
      const ws = new WebSocket(`${gw.url}/v1/ws`);
      ws.on('error', resolve);
    });
    assert.match(error.message, /self[- ]signed|unable to (get|verify)/i);
    await assert.rejects(fetch(`${gw.adminUrl}/healthz`), /fetch failed/);
  });

  for (const transport of ['ws', 'poll'] as const) {
    test(`mmgw handset --ca over ${transport}`, async () => {
      const device = await provisionDevice(gw.dataDir);
      const input = `${JSON.stringify({ id: '1', cmd: 'request', method: 'sys.echo', body: { tls: 1 } })}\n{"cmd":"quit"}\n`;
      const args = ['handset', '--json', '--url', gw.url, '--imei', device.imei, '--secret', device.secret];
      const r = await runMmgw([...args, '--transport', transport, '--ca', ca.cert], { input });
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.equal(lines[0].event, 'connected');
      assert.equal(lines[0].transport, transport);
      assert.deepEqual(
        lines.find((l) => l.id === '1'),
        { id: '1', event: 'response', body: { tls: 1 } },
      );
      const missing = await runMmgw([...args, '--ca', join(dir, 'absent.pem')], { input });
      assert.equal(missing.code, 2);
      assert.match(missing.stdout, /"code":"config.invalid","message":"--ca: cannot read/);
      // Without --ca the certificate is refused: said at once, not retried for half a minute.
      const untrusted = await runMmgw([...args, '--transport', transport], { input: '' });
      assert.equal(untrusted.code, 2, untrusted.stdout);
      assert.match(
        untrusted.stdout,
        /TLS certificate not accepted: (self[- ]signed|unable to (get|verify)).*--ca FILE/,
      );
    });
  }

  test('openssl s_client: TLS 1.1 refused, 1.2 and 1.3 served, on both ports', async () => {
    // The same client command speaks TLS 1.1 with a server that allows it: the refusal is the gateway's.
    const files = ca.server('control');
    const control = createTlsServer({
      cert: ca.pem(files.cert),
      key: ca.pem(files.key),
      minVersion: 'TLSv1',
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    await new Promise<void>((resolve) => control.listen(0, '127.0.0.1', resolve));
    try {
      const port = (control.address() as AddressInfo).port;
      const allowed = await sClient(port, ca.cert, TLS11);
      assert.equal(allowed.protocol, 'TLSv1.1', allowed.output);
    } finally {
      control.close();
    }
    for (const port of [gw.devicePort, gw.adminPort]) {
      const old = await sClient(port, ca.cert, TLS11);
      assert.equal(old.ok, false, old.output);
      assert.match(old.output, /alert protocol version/);
      for (const [flag, version] of [
        ['-tls1_2', 'TLSv1.2'],
        ['-tls1_3', 'TLSv1.3'],
      ] as const) {
        const r = await sClient(port, ca.cert, [flag]);
        assert.equal(r.ok, true, r.output);
        assert.equal(r.protocol, version);
        assert.equal(r.peer, 'gw-first');
      }
    }
  });

  test('the ops endpoint: /metrics and /readyz need a client certificate of the ops CA; /healthz and the API do not', async () => {
    const caPem = ca.pem(ca.cert);
    const scraper = ca.client('scraper');
    const intruder = rogue.client('intruder');
    const own = { cert: ca.pem(scraper.cert), key: ca.pem(scraper.key) };
    const other = { cert: rogue.pem(intruder.cert), key: rogue.pem(intruder.key) };
    const metrics = await httpsGet(`${gw.adminUrl}/metrics`, caPem, own);
    assert.equal(metrics.status, 200);
    assert.match(metrics.body, /^mmgw_node_info/m);
    const expiry = /^mmgw_tls_certificate_expiry_seconds\{[^}]*\} (\d+)$/m.exec(metrics.body)?.[1];
    const validTo = new X509Certificate(ca.pem(live.cert)).validTo;
    assert.equal(Number(expiry), Date.parse(validTo) / 1000);
    assert.equal((await httpsGet(`${gw.adminUrl}/readyz`, caPem, own)).status, 200);
    for (const path of ['/metrics', '/readyz']) {
      for (const client of [undefined, other]) {
        const r = await httpsGet(`${gw.adminUrl}${path}`, caPem, client);
        assert.equal(r.status, 403, `${path} ${client ? 'rogue certificate' : 'no certificate'}`);
        assert.equal(JSON.parse(r.body).error.code, 'api.forbidden');
      }
    }
    assert.equal((await httpsGet(`${gw.adminUrl}/healthz`, caPem)).status, 200);
    assert.equal((await httpsGet(`${gw.adminUrl}/api/v1/openapi.json`, caPem)).status, 200);
  });

  test('SIGHUP: the new certificate on both ports while open sessions (wss, long-poll) stay', async () => {
    const sessions = [];
    for (const transport of ['ws', 'poll'] as const) {
      const device = await provisionDevice(gw.dataDir);
      const h = handset(device, transport);
      const lost: string[] = [];
      h.on('disconnected', (e) => lost.push(e.reason));
      const welcome = await h.connect();
      sessions.push({ h, transport, lost, sessionId: welcome.sessionId });
    }
    const second = ca.server('gw-second');
    copyFileSync(second.cert, live.cert);
    copyFileSync(second.key, live.key);
    process.kill(gw.pid, 'SIGHUP');
    await eventually('the reload logged', () =>
      gw.stdout.some((l) => l.includes('TLS certificate reloaded')),
    );
    const fingerprint = new X509Certificate(ca.pem(second.cert)).fingerprint256;
    assert.ok(gw.stdout.some((l) => l.includes(fingerprint)));
    for (const port of [gw.adminPort, gw.devicePort]) {
      const r = await sClient(port, ca.cert, ['-tls1_3']);
      assert.equal(r.peer, 'gw-second', r.output);
    }
    for (const s of sessions) {
      assert.deepEqual(await s.h.request('sys.echo', { after: 'reload' }), { after: 'reload' });
      assert.deepEqual(s.lost, [], `${s.transport} session dropped`);
      assert.equal(s.h.sessionId, s.sessionId);
      assert.equal(s.h.transport, s.transport);
    }
    assert.equal(gw.process.exitCode, null, 'the gateway still runs');

    // Files that do not load: logged, the second certificate keeps serving.
    copyFileSync(ca.server('gw-third').key, live.key);
    process.kill(gw.pid, 'SIGHUP');
    await eventually('the failed reload logged', () =>
      gw.stdout.some((l) => l.includes('TLS reload failed')),
    );
    assert.equal((await sClient(gw.devicePort, ca.cert, ['-tls1_2'])).peer, 'gw-second');
  });
});

/**
 * Edge workers share the device port (node:cluster) and each serves TLS with its own copy of the
 * files: the primary forwards SIGHUP to them. A long-poll session's requests land on either
 * worker (the SDK's keep-alive agent opens several connections); the worker without the session
 * passes them to the one holding it.
 */
describe('TLS with edge workers', () => {
  let ca: TestCa;
  let gw: Gateway;
  let dir: string;
  const handsets: Handset[] = [];

  before(async () => {
    ca = makeTestCa();
    dir = mkdtempSync(join(tmpdir(), 'mmgw-tls-w-'));
    const first = ca.server('gw-first');
    copyFileSync(first.cert, join(dir, 'gw.pem'));
    copyFileSync(first.key, join(dir, 'gw.key'));
    gw = await startGateway({
      args: ['--tls-cert', join(dir, 'gw.pem'), '--tls-key', join(dir, 'gw.key'), '--edge-workers', '2'],
      env: { MMGW_LOG_LEVEL: 'info' },
    });
  });

  after(async () => {
    for (const h of handsets) await h.close().catch(() => {});
    await gw?.stop();
    ca?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('SIGHUP reaches every worker: each connection gets the new certificate; sessions (wss, long-poll) stay', async () => {
    const sessions: { h: Handset; sessionId: string; lost: string[] }[] = [];
    for (const transport of ['ws', 'poll'] as const) {
      const device = await provisionDevice(gw.dataDir);
      const h = new Handset({
        url: transport === 'ws' ? gw.url : gw.url.replace(/^wss:/, 'https:'),
        imei: device.imei,
        secret: device.secret,
        transport,
        WebSocket,
        ca: ca.pem(ca.cert),
      });
      handsets.push(h);
      const lost: string[] = [];
      h.on('disconnected', (e) => lost.push(e.code ?? e.reason));
      sessions.push({ h, sessionId: (await h.connect()).sessionId, lost });
    }
    const second = ca.server('gw-second');
    copyFileSync(second.cert, join(dir, 'gw.pem'));
    copyFileSync(second.key, join(dir, 'gw.key'));
    process.kill(gw.pid, 'SIGHUP');
    // The primary (admin port) logs its own reload and each worker its own.
    await eventually(
      'three reloads logged',
      () => gw.stdout.filter((l) => l.includes('TLS certificate reloaded')).length >= 3,
    );
    // Connections are spread over the two workers: every one of several shows the new certificate.
    for (const port of [gw.adminPort, ...Array(6).fill(gw.devicePort)]) {
      const r = await sClient(port, ca.cert, ['-tls1_3']);
      assert.equal(r.peer, 'gw-second', r.output);
    }
    for (const { h, sessionId, lost } of sessions) {
      // Several requests each: a long-poll session's land on both workers.
      for (let i = 0; i < 8; i++) assert.deepEqual(await h.request('sys.echo', { i }), { i });
      assert.deepEqual(lost, []);
      assert.equal(h.sessionId, sessionId);
    }
    assert.ok(!gw.stdout.some((l) => l.includes('edge worker died')), 'no edge worker died');
  });
});
