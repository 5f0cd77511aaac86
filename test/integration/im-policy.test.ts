/**
 * The outbound policy on chat logins through a real gateway (issue #11,
 * SSRF): started without an allow list, the gateway refuses im.login to
 * loopback, private and link-local servers with policy.destination_not_allowed,
 * and a server listening there sees no connection; with the allow list the
 * same login reaches it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Handset } from '../../device-protocol/handset.ts';
import { GatewayError } from '../../device-protocol/errors.ts';
import { type Gateway, provisionDevice, startGateway } from '../harness/gateway.ts';
import { type HostilePeer, startHostileXmpp } from '../harness/hostile/index.ts';
import { handsetFor } from './e2e-suite.ts';

describe('chat logins under the default outbound policy', () => {
  let gw: Gateway;
  let handset: Handset;
  let listener: HostilePeer;

  before(async () => {
    // Would take any connection on loopback: it must see none.
    listener = await startHostileXmpp('half-open');
    gw = await startGateway({ env: { MMGW_ALLOW_DESTINATIONS: '' } });
    handset = handsetFor(gw, await provisionDevice(gw.dataDir));
    await handset.connect();
  });
  after(async () => {
    await handset?.close();
    await gw?.stop();
    await listener?.stop();
  });

  for (const host of ['127.0.0.1', '10.1.2.3', '169.254.169.254', '::1', 'localhost']) {
    test(`im.login to ${host} is refused before anything connects`, async () => {
      const err = await handset
        .request('im.login', { jid: 'alice@example.test', password: 'x', host, port: listener.port })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      assert.ok(err instanceof GatewayError, String(err));
      assert.equal(err.code, 'policy.destination_not_allowed');
      assert.equal(listener.connections(), 0);
    });
  }
});

describe('chat logins with loopback allowed', () => {
  test('the same login reaches the listening server (and fails there, typed)', async (t) => {
    // Garbage after connect: a quick typed failure once the server is reached.
    const listener = await startHostileXmpp('garbage');
    t.after(() => listener.stop());
    const gw = await startGateway({ env: { MMGW_ALLOW_DESTINATIONS: '127.0.0.0/8' } });
    t.after(() => gw.stop());
    const handset = handsetFor(gw, await provisionDevice(gw.dataDir));
    t.after(() => handset.close());
    await handset.connect();
    const err = await handset
      .request('im.login', {
        jid: 'alice@example.test',
        password: 'x',
        host: '127.0.0.1',
        port: listener.port,
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    assert.ok(err instanceof GatewayError, String(err));
    assert.notEqual(err.code, 'policy.destination_not_allowed');
    assert.ok(listener.connections() >= 1, 'the allowed server was connected');
  });
});
