/**
 * The docker files run for real: docker/Dockerfile is built with podman (once
 * per content hash of its build context; later runs reuse the image) and
 * its health check shown to follow the configured ops port, then
 * docker/compose.yml and docker/compose.cluster.yml are started with
 * podman-compose, waited for until every node's health check passes, and a
 * handset from this host connects: straight to the single node, and through
 * the cluster's HAProxy over WebSocket and long-poll, where it adds a mail
 * account on the harness's Dovecot and gets mail.new pushed. Then the edge
 * holding its WebSocket is killed: the session goes on through the other edge,
 * the next message is pushed once, and the restart policy brings the edge
 * back. Each project is taken down with its network and volumes, also when a
 * step fails (and at the next run, when the runner killed this one).
 *
 * The containers reach the Dovecot and SMTP peer that listen on this host's
 * loopback through a relay on the compose network's gateway address (a network
 * the test made; the config file opens that one address to the transports).
 * Skips where podman, podman-compose or runc are missing, or not as root.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import { Handset } from '../../device-protocol/handset.ts';
import { eventually } from '../../testing/index.ts';
import { type DovecotServer, freePort, startDovecot } from '../harness/dovecot.ts';
import { nextImei } from '../harness/gateway.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { ADMIN, ApiClient } from '../integration/admin-api-helpers.ts';
import { ALICE } from '../integration/mail-fixture.ts';
import {
  ComposeProject,
  ensureImage,
  missingTools,
  podman,
  podmanAsync,
  ROOT,
  removeStaleProjects,
} from './podman.ts';
import { ensureStandIns, NODE_IMAGE } from './stand-ins.ts';

const skip = missingTools();
const START_MS = 180_000;
let image = '';

before(() => {
  if (skip) return;
  const started = Date.now();
  removeStaleProjects('mmgwtest');
  ensureStandIns(ROOT);
  const built = ensureImage(NODE_IMAGE);
  image = built.image;
  console.log(
    `# image ${image} ${built.built ? 'built' : 'reused'} (${Math.round((Date.now() - started) / 1000)} s)`,
  );
});

function handset(url: string, device: { imei: string; secret: string }, transport: 'ws' | 'poll'): Handset {
  return new Handset({
    url,
    imei: device.imei,
    secret: device.secret,
    transport,
    WebSocket,
    client: 'mmgw-containers/1',
    requestTimeoutMs: 30_000,
    backoff: { initialMs: 200, maxMs: 2000 },
  });
}

async function waitHealthy(project: ComposeProject, services: string[]): Promise<void> {
  for (const service of services)
    await eventually(`${service} healthy`, () => project.healthy(service), {
      timeoutMs: START_MS,
      intervalMs: 1000,
    }).catch((err: Error) => {
      throw new Error(`${err.message}\n--- ${service} logs:\n${project.logs(service)}`);
    });
}

/** Forwards connections to `address`:any port to a loopback port (a peer the containers must reach). */
async function relay(address: string, toPort: number): Promise<{ close(): void; port: number }> {
  const sockets = new Set<Socket>();
  const server = createServer((inbound) => {
    const outbound = tcpConnect(toPort, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, address, () => resolve());
  });
  const at = server.address();
  return {
    port: typeof at === 'object' && at ? at.port : 0,
    // Connections of containers already gone may never end by themselves: cut them.
    close() {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

describe('docker/Dockerfile', { skip }, () => {
  test('a runtime image without build tools, non-root, with its health check and OCI labels', () => {
    const [config] = JSON.parse(podman(['image', 'inspect', image]).stdout) as Array<{
      Config: { User: string; Labels: Record<string, string> };
      Healthcheck?: { Test: string[] };
    }>;
    assert.ok(config);
    assert.equal(config.Config.User, 'node');
    assert.deepEqual(config.Healthcheck?.Test, ['CMD', 'node', '/app/docker/healthcheck.js']);
    assert.equal(config.Config.Labels['org.opencontainers.image.title'], 'mmgw');
    assert.equal(config.Config.Labels['org.opencontainers.image.licenses'], 'Apache-2.0');
    assert.match(config.Config.Labels['org.opencontainers.image.revision'] ?? '', /^[0-9a-f]{40}$/);
    // What the image holds: dist/ and production dependencies only.
    const probe = `
      const fs = require('node:fs');
      const has = (p) => fs.existsSync('/app/' + p);
      const ts = [];
      const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = d + '/' + e.name;
        if (e.isDirectory()) { if (e.name !== 'node_modules') walk(p); } else if (p.endsWith('.ts')) ts.push(p); } };
      walk('/app');
      console.log(JSON.stringify({
        dist: has('dist/server/cli/main.js'), ui: has('admin/ui/dist/index.html'),
        dev: ['tsx', 'esbuild', 'typescript', '@biomejs/biome', 'playwright-core'].filter((m) => has('node_modules/' + m)),
        keys: has('data') || fs.readdirSync('/data').length > 0, git: has('.git'),
        sources: ts.filter((p) => !p.startsWith('/app/admin/ui/') && !p.endsWith('.d.ts')).length,
        tests: ts.filter((p) => p.endsWith('.test.ts')).length,
      }));`;
    const seen = JSON.parse(podman(['run', '--rm', '--entrypoint', 'node', image, '-e', probe]).stdout);
    assert.deepEqual(seen.dev, [], 'no build tools at run time');
    assert.equal(seen.dist, true);
    assert.equal(seen.ui, true);
    assert.equal(seen.keys, false, 'no data or keys baked in');
    assert.equal(seen.git, false);
    assert.equal(seen.tests, 0);
    // Only the few sources the admin UI build is checked against (docker/runtime-files.js).
    assert.ok(seen.sources < 10, `${seen.sources} TypeScript sources outside the UI`);
    const help = podman(['run', '--rm', '--entrypoint', 'mmgw', image, '--help']).stdout;
    assert.match(help, /start/);
  });
});

describe('the image health check', { skip }, () => {
  const started: string[] = [];
  after(() => {
    for (const id of started) podman(['rm', '-f', '-v', id], { allowFailure: true });
  });

  test('follows the ops port given by --admin-port or MMGW_ADMIN_PORT', async () => {
    const run = (args: string[]) => {
      const id = podman(['run', '-d', ...args]).stdout.trim();
      started.push(id);
      return id;
    };
    const byFlag = run([image, 'start', '--admin-port', '9192', '--port', '9190']);
    const byEnv = run(['-e', 'MMGW_ADMIN_PORT=9292', image]);
    for (const id of [byFlag, byEnv])
      await eventually(
        `${id.slice(0, 12)} healthy`,
        () => podman(['healthcheck', 'run', id], { allowFailure: true }).status === 0,
        {
          timeoutMs: START_MS,
          intervalMs: 1000,
        },
      );
    // Nothing answers on the default port there: the check did not pass by asking 8081.
    const probe = "fetch('http://127.0.0.1:8081/healthz').then(() => process.exit(1), () => process.exit(0))";
    assert.equal(podman(['exec', byEnv, 'node', '-e', probe], { allowFailure: true }).status, 0);
  });
});

describe('docker/compose.yml: one node', { skip }, () => {
  let project: ComposeProject;
  before(async () => {
    project = new ComposeProject(`mmgwtest1x${process.pid}`, 'docker/compose.yml', {
      MMGW_IMAGE: image,
      MMGW_PUBLISH_ADDRESS: '127.0.0.1',
      MMGW_DEVICE_PORT: String(await freePort()),
      MMGW_OPS_PORT: String(await freePort()),
    });
    project.down();
  });
  after(() => project?.down());

  test('starts healthy; a handset connects to the published device port', async () => {
    project.up();
    await waitHealthy(project, ['mmgw']);
    const ops = `http://127.0.0.1:${project.vars.MMGW_OPS_PORT}`;
    const ready = await fetch(`${ops}/readyz`);
    assert.equal(ready.status, 200, await ready.text());
    project.exec('mmgw', ['mmgw', 'operator', 'add', 'test']);
    const added = project.exec('mmgw', [
      'mmgw',
      'device',
      'add',
      '--imei',
      nextImei(),
      '--operator',
      'test',
      '--json',
    ]);
    const out = JSON.parse(added.stdout) as { device: { imei: string }; secret: string };
    const h = handset(
      `ws://127.0.0.1:${project.vars.MMGW_DEVICE_PORT}`,
      { imei: out.device.imei, secret: out.secret },
      'ws',
    );
    try {
      await h.connect();
      assert.ok((await h.ping()) >= 0);
    } finally {
      await h.close();
    }
  });
});

describe('docker/compose.cluster.yml: 3 NATS, 2 of each role, HAProxy', { skip }, () => {
  let project: ComposeProject;
  let dir: string;
  let dovecot: DovecotServer;
  let smtp: SmtpPeer;
  const relays: Array<{ close(): void }> = [];
  const handsets: Handset[] = [];
  let ws: Handset;
  let account = '';
  const pushed: Array<{ header: { uid: number; subject: string } }> = [];
  const services = [
    'nats-1',
    'nats-2',
    'nats-3',
    'admin-1',
    'admin-2',
    'transport-1',
    'transport-2',
    'transcoder-1',
    'edge-1',
    'edge-2',
  ];

  before(async () => {
    const name = `mmgwtest2x${process.pid}`;
    project = new ComposeProject(name, 'docker/compose.cluster.yml', {});
    project.down();
    // The network is made here, before `up`, so that its gateway (where the relays listen) is known first.
    podman(['network', 'create', '--label', `io.podman.compose.project=${name}`, `${name}_default`]);
    const gateway = project.gateway();
    dir = mkdtempSync(join(tmpdir(), 'mmgw-cluster-'));
    const secrets = join(dir, 'secrets.json');
    writeFileSync(
      secrets,
      JSON.stringify({
        jwtSecret: randomBytes(32).toString('base64'),
        credentialsKey: randomBytes(32).toString('base64'),
        transport: { allowDestinations: [gateway] },
        // The registry is the cluster's (JetStream): the first admin user comes from config.
        admin: { firstAdminName: ADMIN.name, firstAdminPassword: ADMIN.password },
      }),
    );
    // Read by the node user (uid 1000) in the containers; the directory stays 0700.
    const { chmodSync } = await import('node:fs');
    chmodSync(secrets, 0o644);
    Object.assign(project.vars, {
      MMGW_IMAGE: image,
      MMGW_SECRETS_FILE: secrets,
      MMGW_PUBLISH_ADDRESS: '127.0.0.1',
      MMGW_DEVICE_PORT: String(await freePort()),
      MMGW_OPS_PORT: String(await freePort()),
      MMGW_LB_STATS_PORT: String(await freePort()),
    });
    dovecot = await startDovecot({ users: [ALICE] });
    smtp = await startSmtpPeer({ dovecot });
  });
  after(async () => {
    for (const h of handsets) await h.close().catch(() => {});
    for (const r of relays) r.close();
    project?.down();
    await smtp?.stop();
    await dovecot?.stop({ removeDir: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('starts healthy; a handset through the load balancer adds a mail account and gets mail.new', async () => {
    project.up();
    await waitHealthy(project, services);
    const stats = `http://127.0.0.1:${project.vars.MMGW_LB_STATS_PORT}`;
    await eventually(
      'both edges up in HAProxy',
      async () => {
        const csv = await (await fetch(`${stats}/;csv`)).text();
        return csv.split('\n').filter((l) => l.startsWith('edges,edge-') && l.includes(',UP,')).length === 2;
      },
      { timeoutMs: START_MS, intervalMs: 1000 },
    );

    // The registry lives in JetStream: an operator added through admin-1's API and a
    // device added with the CLI in admin-2's container (its config and environment) are
    // known to every admin and, through the shared device auth table, to both edges.
    const ops = `http://127.0.0.1:${project.vars.MMGW_OPS_PORT}`;
    const api = await eventually(
      'the first admin logs in',
      () => ApiClient.as(ops, ADMIN.name, ADMIN.password).catch(() => undefined),
      { timeoutMs: START_MS, intervalMs: 1000 },
    );
    const operator = await api.call('POST', '/operators', { id: 'test', name: 'Test' });
    assert.ok(operator.status === 201 || operator.status === 409, operator.text);
    const imei = nextImei();
    const provisioned = project.exec('admin-2', [
      'mmgw',
      'device',
      'add',
      '--imei',
      imei,
      '--operator',
      'test',
      '--json',
    ]);
    const device = { imei, secret: (JSON.parse(provisioned.stdout) as { secret: string }).secret };
    await eventually(
      'admin-1 serves the device the CLI added',
      async () => (await api.call('GET', `/devices/${imei}`)).status === 200,
      { timeoutMs: 10_000, intervalMs: 200 },
    );

    const gateway = project.gateway();
    const imap = await relay(gateway, dovecot.imapPort);
    const smtpRelay = await relay(gateway, smtp.port);
    relays.push(imap, smtpRelay);
    // Here a container's first connections to the host's address on a new network go
    // unanswered for half a minute or so (SYNs dropped, then refused or accepted as
    // usual): wait until every transport reads Dovecot's greeting through the relay.
    const greeting = `const s = require('net').connect(${imap.port}, '${gateway}');
      s.setTimeout(3000, () => process.exit(1)); s.on('error', () => process.exit(1));
      s.on('data', (d) => process.exit(String(d).startsWith('* OK') ? 0 : 1));`;
    for (const transport of ['transport-1', 'transport-2'])
      await eventually(
        `${transport} reaches the host's Dovecot`,
        async () => (await podmanAsync(['exec', project.container(transport), 'node', '-e', greeting])) === 0,
        { timeoutMs: 120_000, intervalMs: 1000 },
      );

    const url = `http://127.0.0.1:${project.vars.MMGW_DEVICE_PORT}`;
    ws = handset(url.replace('http:', 'ws:'), device, 'ws');
    handsets.push(ws);
    ws.on('event', (e) => {
      if (e.name === 'mail.new') pushed.push(e.body as (typeof pushed)[number]);
    });
    await ws.connect();
    const added = await ws
      .request<{ account: string }>('mail.account.add', {
        address: ALICE.user,
        imap: { host: gateway, port: imap.port, tls: 'none', user: ALICE.user, password: ALICE.password },
        smtp: {
          host: gateway,
          port: smtpRelay.port,
          tls: 'none',
          user: ALICE.user,
          password: ALICE.password,
        },
      })
      .catch((err: Error) => {
        const logs = ['transport-1', 'transport-2'].map((t) => `--- ${t}:\n${project.logs(t)}`).join('\n');
        throw new Error(`${err.message}\n${logs}`, { cause: err });
      });
    assert.match(added.account, /^m[0-9a-f]+$/);
    account = added.account;
    await ws.request('mail.sync', { account, folder: 'INBOX', limit: 10 });
    await dovecot.appendMessage(ALICE.user, 'INBOX', 'Subject: through the containers\r\n\r\nhello\r\n');
    await eventually('mail.new through HAProxy', () => pushed.length > 0, { timeoutMs: 60_000 });
    assert.equal(pushed[0]?.header.subject, 'through the containers');

    // Long-poll through the same load balancer: the session resumes with a new carrier.
    await ws.switchTransport('poll');
    assert.equal(ws.transport, 'poll');
    assert.ok((await ws.ping()) >= 0);
  });

  test('the edge holding the handset is killed: it resumes through the other, mail.new once, the edge restarts', async (t) => {
    if (!account) return t.skip('needs the previous test');
    await ws.switchTransport('ws');
    // The edge with the handset's WebSocket, by HAProxy's current sessions (scur, the 5th column).
    const stats = `http://127.0.0.1:${project.vars.MMGW_LB_STATS_PORT}/;csv`;
    const holding = await eventually('the edge holding the WebSocket', async () => {
      const rows = (await (await fetch(stats)).text()).split('\n').map((l) => l.split(','));
      return rows.find((r) => r[0] === 'edges' && r[1]?.startsWith('edge-') && Number(r[4]) > 0)?.[1];
    });
    const container = project.container(holding);
    const pid = Number(podman(['inspect', '--format', '{{.State.Pid}}', container]).stdout.trim());
    assert.ok(pid > 0);
    const restartsBefore = Number(
      podman(['inspect', '--format', '{{.RestartCount}}', container]).stdout.trim(),
    );
    // A crash, not a stop: SIGKILL to the node process from outside the container.
    process.kill(pid, 'SIGKILL');

    await eventually(
      'the session carries on through the other edge',
      async () => (await ws.ping().catch(() => -1)) >= 0,
      {
        timeoutMs: 60_000,
        intervalMs: 500,
      },
    );
    const uid = await dovecot.appendMessage(
      ALICE.user,
      'INBOX',
      'Subject: after the edge died\r\n\r\nstill here\r\n',
    );
    await eventually('mail.new after the edge died', () => pushed.some((p) => p.header.uid === uid), {
      timeoutMs: 60_000,
    });
    const uids = pushed.map((p) => p.header.uid);
    assert.equal(new Set(uids).size, uids.length, `mail.new twice: ${uids}`);
    assert.equal(pushed.at(-1)?.header.subject, 'after the edge died');

    // The restart policy brings the killed edge back, and HAProxy takes it again.
    await eventually(
      `${holding} restarted`,
      () =>
        Number(podman(['inspect', '--format', '{{.RestartCount}}', container]).stdout.trim()) >
        restartsBefore,
      { timeoutMs: 60_000, intervalMs: 1000 },
    );
    await waitHealthy(project, [holding]);
  });
});
