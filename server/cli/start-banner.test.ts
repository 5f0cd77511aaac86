import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startBanner } from './start-banner.ts';

const base = {
  release: '0.1.0',
  nodeId: 'gw-1',
  roles: ['all'],
  host: '0.0.0.0',
  devicePort: 8080,
  adminHost: '127.0.0.1',
  adminPort: 8081,
  data: '/srv/mmgw/data',
};

describe('startBanner', () => {
  test('a fresh node: device and UI addresses a local browser can open, and the command for a first admin', () => {
    const text = startBanner({ ...base, adminUsers: 0 });
    assert.match(text, /devices {3}ws:\/\/localhost:8080\/v1\/ws/);
    assert.match(text, /admin UI {2}http:\/\/127\.0\.0\.1:8081\/ui\//);
    assert.match(text, /data {6}\/srv\/mmgw\/data/);
    assert.match(text, /npx mmgw admin user add --name admin --role admin --data \/srv\/mmgw\/data/);
  });

  test('with an admin user: no creation hint', () => {
    assert.doesNotMatch(startBanner({ ...base, adminUsers: 2 }), /admin user add/);
  });

  test('a node without the admin role shows no UI line; one without an edge no device line', () => {
    const text = startBanner({ ...base, devicePort: undefined, adminUsers: undefined, roles: ['transport'] });
    assert.doesNotMatch(text, /admin UI|devices/);
    assert.match(text, /health {4}http:\/\/127\.0\.0\.1:8081\/healthz/);
  });

  test('an IPv6 bind address is bracketed', () => {
    assert.match(startBanner({ ...base, host: '::1', adminUsers: 1 }), /ws:\/\/\[::1\]:8080/);
  });

  test('with TLS: wss:// and https:// addresses, the certificate, the engine that serves it', () => {
    const tls = { subject: 'CN=gw.example', validTo: '2027-12-01T00:00:00.000Z' };
    const text = startBanner({ ...base, adminUsers: 1, tls, opsClientCerts: true });
    assert.match(
      text,
      /devices {3}wss:\/\/localhost:8080\/v1\/ws {2}\(long-poll: https:\/\/localhost:8080\/v1\/poll\)/,
    );
    assert.match(text, /admin UI {2}https:\/\/127\.0\.0\.1:8081\/ui\//);
    assert.match(text, /metrics https:\/\/127\.0\.0\.1:8081\/metrics \(client certificate\)/);
    assert.match(text, /tls {7}TLS 1\.2\+, CN=gw\.example, valid until 2027-12-01/);
    assert.match(text, /portable engine/);
    assert.doesNotMatch(startBanner({ ...base, adminUsers: 1 }), /wss:|https:|portable/);
  });
});
