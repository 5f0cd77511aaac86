import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, expandRoles, loadConfig, redactedConfig } from './config.ts';

function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    assert.equal(err.code, 'config.invalid');
    return err.problems;
  }
  assert.fail('expected the config to be refused');
}

function tempFile(t: { after(fn: () => void): void }, content: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'mmgw.json');
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

describe('config', () => {
  test('defaults', () => {
    const config = loadConfig({ env: {}, cwd: '/srv/gw' });
    assert.deepEqual(config, {
      data: '/srv/gw/data',
      host: '0.0.0.0',
      adminHost: '127.0.0.1',
      port: 8080,
      adminPort: 8081,
      roles: ['all'],
      bus: 'inproc',
      engine: 'uws',
      log: { level: 'info' },
      supervise: true,
      edge: { workers: 1, heartbeatMs: 30000, resumeWindowMs: 120000, compression: true, limits: {} },
    });
  });

  test('every environment variable', () => {
    const config = loadConfig({
      cwd: '/x',
      env: {
        MMGW_DATA: '/var/lib/mmgw',
        MMGW_PORT: '9000',
        MMGW_ADMIN_PORT: '9001',
        MMGW_ROLE: 'edge,transport',
        MMGW_BUS: 'nats://127.0.0.1:4222',
        MMGW_NODE_ID: 'edge-1',
        MMGW_HOST: '127.0.0.1',
        MMGW_ENGINE: 'portable',
        MMGW_EDGE_WORKERS: '3',
        MMGW_LOG_LEVEL: 'debug',
        MMGW_JWT_SECRET: 'x'.repeat(32),
        MMGW_MAIL_PUSH_TOKEN: 'h'.repeat(20),
        MMGW_CREDENTIALS_KEY: 'k'.repeat(44),
        MMGW_SUPERVISE: 'false',
        MMGW_IM_LINGER_MS: '1500',
        MMGW_ADMIN_NAME: 'alice',
        MMGW_ADMIN_PASSWORD: 'first-password',
      },
    });
    assert.equal(config.data, '/var/lib/mmgw');
    assert.equal(config.port, 9000);
    assert.equal(config.adminPort, 9001);
    assert.deepEqual(config.roles, ['edge', 'transport']);
    assert.equal(config.bus, 'nats://127.0.0.1:4222');
    assert.equal(config.nodeId, 'edge-1');
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.engine, 'portable');
    assert.equal(config.edge.workers, 3);
    assert.equal(config.log.level, 'debug');
    assert.equal(config.jwtSecret, 'x'.repeat(32));
    assert.equal(redactedConfig(config).jwtSecret, '[redacted]');
    assert.equal(config.mailPushToken, 'h'.repeat(20));
    assert.equal(redactedConfig(config).mailPushToken, '[redacted]');
    assert.equal(config.credentialsKey, 'k'.repeat(44));
    assert.equal(redactedConfig(config).credentialsKey, '[redacted]');
    assert.equal(config.supervise, false);
    assert.equal(config.im?.lingerMs, 1500);
    assert.equal(config.admin?.firstAdminName, 'alice');
    assert.equal(config.admin?.firstAdminPassword, 'first-password');
    // The rest of the admin settings keep their defaults when only the first admin is given.
    assert.equal(config.admin?.tokenTtlSeconds, 12 * 3600);
    const redacted = redactedConfig(config) as {
      admin: { firstAdminPassword: string; firstAdminName: string };
    };
    assert.equal(redacted.admin.firstAdminPassword, '[redacted]');
    assert.equal(redacted.admin.firstAdminName, 'alice');
    assert.ok(!JSON.stringify(redactedConfig(config)).includes('first-password'));
  });

  test('push: the VAPID pair is checked and its private key never logged; the interval from the environment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mmgw-config-push-'));
    try {
      const vapid = { publicKey: `B${'a'.repeat(86)}`, privateKey: 'p'.repeat(43) };
      const file = join(dir, 'push.json');
      writeFileSync(file, JSON.stringify({ push: { vapid, subject: 'mailto:ops@example.net' } }));
      const config = loadConfig({ file, env: { MMGW_PUSH_INTERVAL_MS: '5000', MMGW_PUSH_EXPIRE_DAYS: '0' } });
      assert.deepEqual(config.push?.vapid, vapid);
      assert.equal(config.push?.intervalMs, 5000);
      assert.equal(config.push?.expireDays, 0, '0: channels never expire');
      assert.throws(() => loadConfig({ file, env: { MMGW_PUSH_EXPIRE_DAYS: '1.5' } }), /push\.expireDays/);
      assert.ok(!JSON.stringify(redactedConfig(config)).includes('p'.repeat(43)));
      assert.equal(
        (redactedConfig(config) as { push: { vapid: { publicKey: string } } }).push.vapid.publicKey,
        vapid.publicKey,
      );
      writeFileSync(
        file,
        JSON.stringify({ push: { vapid: { ...vapid, privateKey: 'short' }, subject: 'ops' } }),
      );
      assert.deepEqual(
        problems(() => loadConfig({ file, env: {} })),
        [
          `config: push.vapid.privateKey: expected 32 bytes in base64url (43 characters), got "short" (from file ${file})`,
          `config: push.subject: expected a mailto: or https: URL, got "ops" (from file ${file})`,
        ],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('push.sms: defaults for the port and the hourly limits, the password never logged, bad keys named', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mmgw-config-sms-'));
    try {
      const file = join(dir, 'sms.json');
      const sms = { host: 'smsc.example.net', systemId: 'mmgw', password: 'Pw-s3cr', sourceAddress: 'Mmgw' };
      writeFileSync(file, JSON.stringify({ push: { sms } }));
      const config = loadConfig({ file, env: {} });
      assert.deepEqual(config.push?.sms, {
        ...sms,
        port: 2775,
        perDevicePerHour: 4,
        perOperatorPerHour: 1000,
      });
      const logged = JSON.stringify(redactedConfig(config));
      assert.ok(!logged.includes('Pw-s3cr'), logged);
      assert.ok(logged.includes('smsc.example.net'));
      writeFileSync(
        file,
        JSON.stringify({
          push: { sms: { ...sms, sourceAddress: '+12-34', perDevicePerHour: -1, extra: 1 } },
        }),
      );
      const found = problems(() => loadConfig({ file, env: {} }));
      assert.ok(
        found.some((p) => p.startsWith('config: push.sms.sourceAddress: expected a number')),
        found.join('\n'),
      );
      assert.ok(
        found.some((p) => p.startsWith('config: push.sms.perDevicePerHour')),
        found.join('\n'),
      );
      assert.ok(
        found.some((p) => p.includes('extra')),
        found.join('\n'),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('push.fcm and push.apns: checked key by key; absent, the kinds are not enabled', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mmgw-config-push-'));
    try {
      const file = join(dir, 'push.json');
      const fcm = { serviceAccountFile: '/etc/mmgw/fcm.json', endpoint: 'https://127.0.0.1:8443' };
      const apns = {
        keyId: 'ABCDE12345',
        teamId: 'TEAM123456',
        keyFile: '/etc/mmgw/apns.p8',
        host: 'sandbox',
      };
      writeFileSync(file, JSON.stringify({ push: { fcm, apns } }));
      const config = loadConfig({ file, env: {} });
      assert.deepEqual(config.push?.fcm, fcm);
      assert.deepEqual(config.push?.apns, apns);
      writeFileSync(
        file,
        JSON.stringify({
          push: {
            fcm: { serviceAccountFile: '/x', endpoint: 'http://fcm.example' },
            apns: { ...apns, keyId: 'short', host: 'staging', pushType: 'loud' },
          },
        }),
      );
      assert.deepEqual(
        problems(() => loadConfig({ file, env: {} })),
        [
          `config: push.fcm.endpoint: expected an https:// URL (the FCM API origin), got "http://fcm.example" (from file ${file})`,
          `config: push.apns.keyId: expected 10 letters or digits, got "short" (from file ${file})`,
          `config: push.apns.host: expected an https:// URL (production, sandbox or an origin), got "staging" (from file ${file})`,
          `config: push.apns.pushType: expected background or alert, got "loud" (from file ${file})`,
        ],
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('supervise: on by default, off with --no-supervise or MMGW_SUPERVISE=0; anything else is refused', () => {
    assert.equal(loadConfig({ env: {} }).supervise, true);
    assert.equal(loadConfig({ env: {}, flags: { supervise: false } }).supervise, false);
    assert.equal(loadConfig({ env: { MMGW_SUPERVISE: '0' } }).supervise, false);
    assert.equal(loadConfig({ env: { MMGW_SUPERVISE: 'yes' } }).supervise, true);
    assert.deepEqual(
      problems(() => loadConfig({ env: { MMGW_SUPERVISE: 'maybe' } })),
      ['config: supervise: expected true or false, got "maybe" (from env MMGW_SUPERVISE)'],
    );
    assert.match(
      problems(() => loadConfig({ env: { MMGW_IM_LINGER_MS: '0' } }))[0] ?? '',
      /^config: im\.lingerMs: expected a number ≥ 1, got 0 \(from env MMGW_IM_LINGER_MS\)$/,
    );
  });

  test('file < environment < flags', (t) => {
    const file = tempFile(t, {
      port: 1000,
      adminPort: 1001,
      edge: { heartbeatMs: 5000 },
      log: { level: 'warn' },
    });
    const config = loadConfig({
      file,
      cwd: '/x',
      env: { MMGW_PORT: '2000', MMGW_LOG_LEVEL: 'error' },
      flags: { port: '3000', roles: ['edge', 'admin,transport'] },
    });
    assert.equal(config.port, 3000);
    assert.equal(config.adminPort, 1001);
    assert.equal(config.edge.heartbeatMs, 5000);
    assert.equal(config.edge.resumeWindowMs, 120000, 'defaults fill what the file leaves out');
    assert.equal(config.edge.compression, true, 'frame compression is on unless turned off');
    const off = loadConfig({ file: tempFile(t, { edge: { compression: false } }), env: {} });
    assert.equal(off.edge.compression, false);
    // The limits before authentication pass through to the edge; unset ones are left to its defaults.
    const preAuth = {
      helloTimeoutMs: 500,
      maxUnauthenticatedPerAddress: 50,
      authFailuresPerAddressPerMinute: 2000,
    };
    const limited = loadConfig({ file: tempFile(t, { edge: { limits: preAuth } }), env: {} });
    assert.deepEqual(limited.edge.limits, preAuth);
    assert.equal(config.log.level, 'error');
    assert.deepEqual(config.roles, ['edge', 'admin', 'transport']);
    // MMGW_CONFIG names the file when --config is absent.
    assert.equal(loadConfig({ env: { MMGW_CONFIG: file } }).port, 1000);
  });

  test('a bad value names the key, the value and where it came from', (t) => {
    const file = tempFile(t, { edge: { heartbeatMs: 'abc' } });
    assert.deepEqual(
      problems(() => loadConfig({ file, env: {} })),
      [`config: edge.heartbeatMs: expected a number ≥ 1000, got "abc" (from file ${file})`],
    );
    const yes = tempFile(t, { edge: { compression: 'yes' } });
    assert.deepEqual(
      problems(() => loadConfig({ file: yes, env: {} })),
      [`config: edge.compression: expected true or false, got "yes" (from file ${yes})`],
    );
    assert.deepEqual(
      problems(() => loadConfig({ env: { MMGW_PORT: 'eighty' } })),
      ['config: port: expected a number 0–65535, got "eighty" (from env MMGW_PORT)'],
    );
    assert.deepEqual(
      problems(() => loadConfig({ env: {}, flags: { adminPort: '70000' } })),
      ['config: adminPort: expected a number 0–65535, got 70000 (from flag --admin-port)'],
    );
    assert.match(
      problems(() => loadConfig({ env: { MMGW_ROLE: 'edge,relay' } }))[0] ?? '',
      /^config: roles\.1: expected one of all, edge, transport, transcoder, admin, got "relay" \(from env MMGW_ROLE\)$/,
    );
    assert.match(
      problems(() => loadConfig({ env: { MMGW_ENGINE: 'fast' } }))[0] ?? '',
      /^config: engine: expected "uws" or "portable"/,
    );
    assert.match(
      problems(() => loadConfig({ env: { MMGW_BUS: 'redis://x' } }))[0] ?? '',
      /^config: bus: expected "inproc" or nats:/,
    );
    assert.match(problems(() => loadConfig({ env: { MMGW_NODE_ID: 'a.b' } }))[0] ?? '', /^config: nodeId: /);
    assert.match(
      problems(() => loadConfig({ env: { MMGW_EDGE_WORKERS: '0' } }))[0] ?? '',
      /^config: edge\.workers: expected a number 1–64, got 0/,
    );
    assert.match(
      problems(() => loadConfig({ env: { MMGW_LOG_LEVEL: 'loud' } }))[0] ?? '',
      /^config: log\.level: expected one of/,
    );
    assert.match(
      problems(() => loadConfig({ env: { MMGW_JWT_SECRET: 'short' } }))[0] ?? '',
      /^config: jwtSecret: expected at least 32 characters/,
    );
    assert.match(
      problems(() => loadConfig({ env: { MMGW_MAIL_PUSH_TOKEN: 'short' } }))[0] ?? '',
      /^config: mailPushToken: expected at least 16 characters/,
    );
    assert.match(
      problems(() => loadConfig({ env: { MMGW_EDGE_WORKERS: '1.5' } }))[0] ?? '',
      /^config: edge\.workers: expected a .*, got "1\.5"/,
    );
  });

  test('transport: allowDestinations from the file and MMGW_ALLOW_DESTINATIONS are merged', (t) => {
    const file = tempFile(t, {
      transport: { allowDestinations: ['10.1.0.0/16'], allowPorts: [2525], maxAccountsPerDevice: 3 },
    });
    const config = loadConfig({ file, env: { MMGW_ALLOW_DESTINATIONS: '127.0.0.0/8, ::1,,*.corp.test' } });
    assert.deepEqual(config.transport, {
      allowDestinations: ['10.1.0.0/16', '127.0.0.0/8', '::1', '*.corp.test'],
      allowPorts: [2525],
      maxAccountsPerDevice: 3,
    });
    // Without a file the environment alone makes the list; an empty variable adds nothing.
    assert.deepEqual(loadConfig({ env: { MMGW_ALLOW_DESTINATIONS: '127.0.0.1' } }).transport, {
      allowDestinations: ['127.0.0.1'],
    });
    assert.equal(loadConfig({ env: { MMGW_ALLOW_DESTINATIONS: ' ' } }).transport, undefined);
  });

  test('transport: a bad destination or port is named with where it came from', (t) => {
    assert.match(
      problems(() => loadConfig({ env: { MMGW_ALLOW_DESTINATIONS: '10.0.0.0/33' } }))[0] ?? '',
      /^config: transport\.allowDestinations\.0: expected a CIDR or host name: .*prefix length.*\(from env MMGW_ALLOW_DESTINATIONS\)$/,
    );
    const file = tempFile(t, { transport: { allowDestinations: ['ok.test'], allowPorts: [0] } });
    const found = problems(() => loadConfig({ file, env: { MMGW_ALLOW_DESTINATIONS: 'bad host' } }));
    assert.deepEqual(found.length, 2);
    assert.match(
      found.join('\n'),
      /transport\.allowDestinations\.1: expected a CIDR or host name: .*bad host/,
    );
    assert.match(found.join('\n'), /transport\.allowPorts\.0: expected a number 1–65535, got 0/);
    assert.match(
      problems(() =>
        loadConfig({ file: tempFile(t, { transport: { maxAccountsPerDevice: 0 } }), env: {} }),
      )[0] ?? '',
      /^config: transport\.maxAccountsPerDevice: expected a number 1–1000/,
    );
  });

  test('an unknown key is refused by name, at any depth', (t) => {
    const file = tempFile(t, {
      prot: 8080,
      edge: { heartbeat: 1000, limits: { maxFrameBytes: 4096, nope: 1 } },
    });
    assert.deepEqual(problems(() => loadConfig({ file, env: {} })).sort(), [
      `config: edge.heartbeat: unknown key (from file ${file})`,
      `config: edge.limits.nope: unknown key (from file ${file})`,
      `config: prot: unknown key (from file ${file})`,
    ]);
  });

  test('an unreadable or malformed file is named', (t) => {
    assert.match(
      problems(() => loadConfig({ file: '/nonexistent/mmgw.json', env: {} }))[0] ?? '',
      /cannot read config file \/nonexistent\/mmgw\.json/,
    );
    assert.match(
      problems(() => loadConfig({ file: tempFile(t, '{port: 1'), env: {} }))[0] ?? '',
      /is not valid JSON/,
    );
    assert.match(
      problems(() => loadConfig({ file: tempFile(t, '[1]'), env: {} }))[0] ?? '',
      /must hold a JSON object/,
    );
  });

  test('expandRoles', () => {
    assert.deepEqual(expandRoles(['all']), ['admin', 'transport', 'transcoder', 'edge']);
    assert.deepEqual(expandRoles(['edge', 'admin']), ['admin', 'edge']);
  });

  test('alarms: channels from the file, secrets from the environment, redacted; bad values named', (t) => {
    const file = tempFile(
      t,
      JSON.stringify({
        alarms: {
          history: { replicas: 3 },
          backendFailing: { windowMs: 60000, perDevice: 4 },
          webhook: { url: 'https://ops.example.com/hook', secret: 'from-the-file-0123456789' },
          email: {
            host: 'smtp.example.com',
            user: 'mmgw',
            from: 'mmgw@example.com',
            to: ['noc@example.com'],
          },
        },
      }),
    );
    const config = loadConfig({
      file,
      env: { MMGW_ALARM_WEBHOOK_SECRET: 'from-the-env-0123456789', MMGW_ALARM_SMTP_PASSWORD: 'smtp-pw' },
    });
    assert.equal(config.alarms?.webhook?.secret, 'from-the-env-0123456789');
    assert.equal(config.alarms?.email?.password, 'smtp-pw');
    assert.equal(config.alarms?.email?.port, 587);
    assert.equal(config.alarms?.backendFailing?.perDevice, 4);
    const logged = JSON.stringify(redactedConfig(config));
    assert.ok(!logged.includes('from-the-env') && !logged.includes('smtp-pw'), logged);
    const bad = tempFile(
      t,
      JSON.stringify({ alarms: { webhook: { url: 'ftp://x', secret: 'short' }, history: { replicas: 9 } } }),
    );
    assert.deepEqual(
      problems(() => loadConfig({ file: bad, env: {} }))
        .map((p) => p.split(':')[1]?.trim())
        .sort(),
      ['alarms.history.replicas', 'alarms.webhook.secret', 'alarms.webhook.url'],
    );
  });

  test('alarms.sms: numbers checked, and it needs push.sms (the SMPP link it sends over)', (t) => {
    const sms = { to: ['+491701234567'], minSeverity: 'warning', maxPerHour: 5 };
    const link = { host: 'smsc.example.net', systemId: 'mmgw', password: 'pw', sourceAddress: 'Mmgw' };
    const ok = loadConfig({
      file: tempFile(t, JSON.stringify({ alarms: { sms }, push: { sms: link } })),
      env: {},
    });
    assert.deepEqual(ok.alarms?.sms, sms);
    const alone = tempFile(t, JSON.stringify({ alarms: { sms } }));
    assert.deepEqual(
      problems(() => loadConfig({ file: alone, env: {} })),
      ['config: alarms.sms: needs push.sms, the SMPP link it sends over'],
    );
    const bad = tempFile(
      t,
      JSON.stringify({ alarms: { sms: { to: ['01701234567'], minSeverity: 'loud' } }, push: { sms: link } }),
    );
    assert.deepEqual(
      problems(() => loadConfig({ file: bad, env: {} })).map((p) => p.split(':')[1]?.trim()),
      ['alarms.sms.to.0', 'alarms.sms.minSeverity'],
    );
  });

  test('tls: flags, environment or file; paths resolved; the portable engine unless uws is asked for, which is refused', (t) => {
    assert.equal(loadConfig({ env: {} }).tls, undefined);
    assert.equal(loadConfig({ env: {} }).engine, 'uws');
    const byFlags = loadConfig({
      cwd: '/srv/gw',
      env: {},
      flags: { tlsCert: 'certs/gw.pem', tlsKey: '/keys/gw.key', opsClientCa: 'ops-ca.pem' },
    });
    assert.deepEqual(byFlags.tls, {
      cert: '/srv/gw/certs/gw.pem',
      key: '/keys/gw.key',
      opsClientCa: '/srv/gw/ops-ca.pem',
    });
    assert.equal(byFlags.engine, 'portable');
    const byEnv = loadConfig({
      cwd: '/x',
      env: { MMGW_TLS_CERT: '/c.pem', MMGW_TLS_KEY: '/k.pem', MMGW_OPS_CLIENT_CA: '/ca.pem' },
    });
    assert.deepEqual(byEnv.tls, { cert: '/c.pem', key: '/k.pem', opsClientCa: '/ca.pem' });
    const file = tempFile(t, { tls: { cert: '/c.pem', key: '/k.pem' }, engine: 'portable' });
    assert.deepEqual(loadConfig({ file, env: {} }).tls, { cert: '/c.pem', key: '/k.pem' });
    // Half a pair, or a client CA alone, names what is missing.
    assert.match(
      problems(() => loadConfig({ env: {}, flags: { tlsCert: '/c.pem' } }))[0] ?? '',
      /^config: tls\.key: expected the path of a PEM private key \(--tls-key\), got nothing$/,
    );
    assert.match(
      problems(() => loadConfig({ env: { MMGW_OPS_CLIENT_CA: '/ca.pem' } }))[0] ?? '',
      /^config: tls\.cert: expected the path of a PEM certificate chain/,
    );
    assert.match(
      problems(() =>
        loadConfig({ file: tempFile(t, { tls: { cert: '/c', key: '/k', ca: '/x' } }), env: {} }),
      )[0] ?? '',
      /^config: tls\.ca: unknown key/,
    );
    // uws has no TLS in its build: asked for with TLS, the start stops and says why.
    for (const asked of [
      { env: { MMGW_ENGINE: 'uws' }, from: 'env MMGW_ENGINE' },
      { env: {}, flags: { engine: 'uws' }, from: 'flag --engine' },
    ]) {
      const [problem] = problems(() =>
        loadConfig({ env: asked.env, flags: { tlsCert: '/c', tlsKey: '/k', ...asked.flags } }),
      );
      assert.match(problem ?? '', /^config: engine: the uws engine cannot serve TLS/);
      assert.ok(problem?.endsWith(`(from ${asked.from})`), problem);
    }
  });
});
