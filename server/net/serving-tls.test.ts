import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import { makeTestCa, type TestCa } from '../../testing/index.ts';
import { opsClientAllowed, ServingTls } from './serving-tls.ts';

let ca: TestCa;

function fingerprint(path: string): string {
  return new X509Certificate(ca.pem(path)).fingerprint256;
}

/** A TLS connection to the server; resolves once the handshake is done (or rejects with its error). */
function open(port: number, options: Record<string, unknown> = {}): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, ca: ca.pem(ca.cert), ...options }, () => resolve(s));
    s.once('error', reject);
  });
}

function listen(tls: ServingTls): Promise<{ server: Server; port: number }> {
  const server = createServer(tls.serverOptions('device'), (_req, res) => res.end('ok'));
  tls.attach(server, 'device');
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port })),
  );
}

describe('ServingTls', () => {
  before(() => {
    ca = makeTestCa();
  });
  after(() => ca.remove());

  test('bad files stop the start with config.invalid naming the key at fault', () => {
    const a = ca.server('files-a');
    const b = ca.server('files-b');
    const fail = (files: Parameters<typeof ServingTls.load>[0], field: string, words: RegExp) =>
      assert.throws(
        () => ServingTls.load(files),
        (err: unknown) =>
          err instanceof GatewayError &&
          err.code === 'config.invalid' &&
          err.field === field &&
          words.test(err.message),
      );
    fail({ cert: join(ca.dir, 'absent.pem'), key: a.key }, 'tls.cert', /cannot read/);
    fail({ cert: a.cert, key: join(ca.dir, 'absent.key') }, 'tls.key', /cannot read/);
    fail({ cert: a.key, key: a.key }, 'tls.cert', /no PEM certificate/);
    fail({ cert: a.cert, key: b.key }, 'tls.key', /does not go with/);
    fail({ cert: a.cert, key: a.key, opsClientCa: a.key }, 'tls.opsClientCa', /no PEM certificate/);
    assert.match(ServingTls.load(a).facts.subject, /CN=files-a/);
  });

  test('TLS 1.2 and 1.3 are served, 1.1 is refused in the handshake', async () => {
    const { server, port } = await listen(ServingTls.load(ca.server('versions')));
    try {
      for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
        const s = await open(port, { minVersion: version, maxVersion: version });
        assert.equal(s.getProtocol(), version);
        s.destroy();
      }
      // The client may offer 1.1 (security level 0 lets OpenSSL 3 do it); the server refuses.
      await assert.rejects(
        open(port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }),
        /alert protocol version/,
      );
    } finally {
      server.close();
    }
  });

  test('reload(): new connections get the new certificate, an open one stays; bad files keep the old', async () => {
    const first = ca.server('reload-1');
    const second = ca.server('reload-2');
    const live = { cert: join(ca.dir, 'live.pem'), key: join(ca.dir, 'live.key') };
    copyFileSync(first.cert, live.cert);
    copyFileSync(first.key, live.key);
    const tls = ServingTls.load(live);
    const { server, port } = await listen(tls);
    try {
      const old = await open(port);
      assert.equal(old.getPeerX509Certificate()?.fingerprint256, fingerprint(first.cert));

      copyFileSync(second.cert, live.cert);
      copyFileSync(second.key, live.key);
      assert.equal(tls.reload().fingerprint256, fingerprint(second.cert));
      const fresh = await open(port);
      assert.equal(fresh.getPeerX509Certificate()?.fingerprint256, fingerprint(second.cert));
      fresh.destroy();
      // The connection made before the reload still carries requests.
      old.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      const answer = await new Promise<string>((resolve) => {
        let text = '';
        old.on('data', (d) => (text += d));
        old.on('end', () => resolve(text));
      });
      assert.match(answer, /^HTTP\/1\.1 200/);

      // A key that does not go with the certificate (a rotation caught half-way): refused, old kept.
      copyFileSync(first.key, live.key);
      assert.throws(() => tls.reload(), /does not go with/);
      writeFileSync(live.cert, 'not a certificate');
      assert.throws(() => tls.reload(), /no PEM certificate/);
      const still = await open(port);
      assert.equal(still.getPeerX509Certificate()?.fingerprint256, fingerprint(second.cert));
      still.destroy();
    } finally {
      server.close();
    }
  });

  test('the admin listener asks for a client certificate only with a client CA; opsClientAllowed checks it', () => {
    const files = ca.server('ops');
    const plain = ServingTls.load(files);
    assert.equal(plain.serverOptions('admin').requestCert, undefined);
    assert.equal(opsClientAllowed(plain, {}), true);
    assert.equal(opsClientAllowed(undefined, {}), true);
    const guarded = ServingTls.load({ ...files, opsClientCa: ca.cert });
    assert.equal(guarded.serverOptions('admin').requestCert, true);
    assert.equal(guarded.serverOptions('admin').rejectUnauthorized, false);
    assert.equal(guarded.serverOptions('device').requestCert, undefined);
    assert.equal(opsClientAllowed(guarded, { authorized: false }), false);
    assert.equal(opsClientAllowed(guarded, {}), false);
    assert.equal(opsClientAllowed(guarded, { authorized: true }), true);
  });
});
