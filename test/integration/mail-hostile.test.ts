/**
 * Hostile mail servers (issue #11): for IMAP and SMTP, every behaviour of the
 * hostile-peers kit (test/harness/hostile/), met by a device through a real
 * gateway. For each: the device gets a typed error within a bound (the
 * gateway's mail connect timeout is 2 s here, a login or SMTP exchange gets
 * twice that); no error carries the peer's secret marker; another device's
 * echo still works; the gateway is still up. The peers listen on loopback,
 * which the harness opens (MMGW_ALLOW_DESTINATIONS=127.0.0.0/8,::1).
 *
 * Where the account is added anyway (an SMTP server that only misbehaves
 * after the login), mail.send is what fails.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GatewayError, isErrorCode } from '../../device-protocol/errors.ts';
import type { Handset } from '../../device-protocol/handset.ts';
import {
  HOSTILE_BEHAVIOURS,
  type HostileBehaviour,
  type HostileOptions,
  type HostilePeer,
  startHostilePeer,
} from '../harness/hostile/index.ts';
import { ALICE, BOB, type MailGatewayRig, mailAccountBody, startMailGatewayRig } from './mail-fixture.ts';

const CONNECT_TIMEOUT_MS = 2000;
/** Connect timeout, then a login (or SMTP exchange) deadline of twice it, and room for a loaded machine. */
const BOUND_MS = 3 * CONNECT_TIMEOUT_MS + 4000;

type Server = 'imap' | 'smtp';

/** Per behaviour: the TLS mode the account asks for, and the peer's options. */
function setup(behaviour: HostileBehaviour): { tls: 'none' | 'starttls'; peer: HostileOptions } {
  if (behaviour === 'tls-stall') return { tls: 'starttls', peer: {} };
  return { tls: 'none', peer: {} };
}

describe('hostile IMAP and SMTP servers, through the gateway', () => {
  let rig: MailGatewayRig;
  let a: Handset;
  let b: Handset;
  let configDir: string;
  const figures: string[] = [];

  before(async () => {
    configDir = mkdtempSync(join(tmpdir(), 'mmgw-hostile-config-'));
    const config = join(configDir, 'mmgw.json');
    writeFileSync(config, JSON.stringify({ transport: { mailConnectTimeoutMs: CONNECT_TIMEOUT_MS } }));
    rig = await startMailGatewayRig({ gateway: { env: { MMGW_CONFIG: config } } });
    [a, b] = await Promise.all([rig.device(), rig.device()]);
  });
  after(async () => {
    if (figures.length) console.log(figures.map((f) => `# ${f}`).join('\n'));
    await rig?.stop();
    if (configDir) rmSync(configDir, { recursive: true, force: true });
  });

  /** The account body with `server` pointed at the peer and the other at the real servers. */
  const bodyFor = (server: Server, peer: HostilePeer, tls: 'none' | 'starttls') => {
    const body = mailAccountBody(rig.dovecot, rig.smtp, ALICE) as Record<string, any>;
    body[server] = {
      ...body[server],
      host: peer.host,
      port: peer.port,
      tls,
      ...(tls === 'starttls' ? { allowInvalidCert: true } : {}),
    };
    return body;
  };

  /** The error the device gets: from mail.account.add, else (account added) from mail.send. */
  const deviceError = async (server: Server, peer: HostilePeer, tls: 'none' | 'starttls') => {
    let via = 'mail.account.add';
    try {
      const { account } = await a.request<{ account: string }>(
        'mail.account.add',
        bodyFor(server, peer, tls),
      );
      via = 'mail.send';
      try {
        await a.request('mail.send', {
          account,
          to: [BOB.user],
          subject: 'hi',
          text: 'x',
          clientId: `c-${peer.port}`,
        });
      } finally {
        await a.request('mail.account.remove', { account });
      }
    } catch (err) {
      return { err, via };
    }
    return { err: undefined, via };
  };

  const stillServing = async () => {
    const n = Math.random();
    assert.deepEqual(await b.request('sys.echo', { n }), { n }, "another device's echo");
    assert.equal(rig.gw.process.exitCode, null, 'the gateway is up');
    assert.equal(rig.gw.process.signalCode, null);
    const health = await fetch(`${rig.gw.adminUrl}/healthz`);
    await health.arrayBuffer();
    assert.equal(health.status, 200);
  };

  for (const server of ['imap', 'smtp'] as const) {
    for (const behaviour of HOSTILE_BEHAVIOURS) {
      const banners =
        behaviour === 'banner-with-secrets' ? (['ssh', 'http', 'native'] as const) : [undefined];
      for (const banner of banners) {
        const name = `${server} ${behaviour}${banner ? ` (${banner})` : ''}`;
        test(`${name}: a typed error in bounded time, no marker, the gateway and others untouched`, async (t) => {
          const { tls, peer: options } = setup(behaviour);
          const peer = await startHostilePeer(server, behaviour, {
            ...options,
            ...(banner ? { banner } : {}),
          });
          t.after(() => peer.stop());
          const started = performance.now();
          const { err, via } = await deviceError(server, peer, tls);
          const tookMs = performance.now() - started;
          assert.ok(err instanceof GatewayError, `${name}: ${via} gave ${err}`);
          figures.push(`${name}: ${via} → ${err.code} in ${tookMs.toFixed(0)} ms`);
          assert.ok(isErrorCode(err.code) && err.code !== 'internal', `${name}: ${err.code}`);
          assert.ok(err.code.startsWith('mail.'), `${name}: ${err.code} ${err.message}`);
          assert.ok(tookMs < BOUND_MS, `${name}: ${tookMs.toFixed(0)} ms`);
          const seen = JSON.stringify({ code: err.code, message: err.message, field: err.field });
          assert.ok(!seen.includes(peer.marker), `${name}: the marker reached the device: ${seen}`);
          assert.ok(
            !/SSH-2\.0|HTTP\/1\.1|Set-Cookie/i.test(seen),
            `${name}: the peer's words reached the device`,
          );
          await stillServing();
        });
      }
    }
  }
});
