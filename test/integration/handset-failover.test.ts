/**
 * The Handset SDK given the URLs of two edges (no load balancer), against
 * real node processes sharing a NATS bus: an admin + transport node and two
 * edge nodes. The device's service profile sets a short heartbeat.
 *
 * - The first URL refuses connections: the handset connects to the second.
 * - The edge holding the session is SIGSTOPped (TCP stays open, nothing comes
 *   back): the handset notices within 2 heartbeats and moves to the other
 *   edge, whose Resume claims the session once the frozen edge can answer
 *   (it is thawed after the handset reached the other edge); every event
 *   pushed before, during and after the freeze reaches the application
 *   exactly once, in order. Over WebSocket and over long-poll (each freezes
 *   a different edge).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import {
  type GatewayError,
  Handset,
  type HandsetConnectedEvent,
  type HandsetDisconnectedEvent,
  type HandsetPushEvent,
  type HandsetReconnectingEvent,
} from '../../device-protocol/index.ts';
import { type Bus, Subjects } from '../../server/bus/bus.ts';
import { connectNatsBus } from '../../server/bus/nats.ts';
import { eventually } from '../../testing/index.ts';
import { type Gateway, nextImei, startGateway, waitReady } from '../harness/gateway.ts';
import { freePort, type NatsServerHandle, startNatsServer } from '../harness/nats.ts';
import { ADMIN, ApiClient } from './admin-api-helpers.ts';

/** The heartbeat the device's service profile asks for. */
const HEARTBEAT_MS = 1500;
/** Bounds only against hangs; the timing checked is the frozen carrier's notice. */
const WAIT = { timeoutMs: 60_000, intervalMs: 50 };
const JWT = { MMGW_JWT_SECRET: 'failover-test-secret-0123456789abcdef' };

interface Recorded {
  events: HandsetPushEvent[];
  connected: HandsetConnectedEvent[];
  disconnected: Array<HandsetDisconnectedEvent & { at: number }>;
  reconnecting: HandsetReconnectingEvent[];
  errors: GatewayError[];
}

describe('Handset with several edge URLs', () => {
  let nats: NatsServerHandle;
  let admin: Gateway;
  let edges: Gateway[];
  let api: ApiClient;
  let bus: Bus;
  const handsets: Handset[] = [];

  before(async () => {
    nats = await startNatsServer();
    const tag = `${process.pid}`;
    admin = await startGateway({
      args: ['--role', 'admin,transport', '--bus', nats.url, '--node-id', `adm-${tag}`],
      env: { MMGW_ADMIN_NAME: ADMIN.name, MMGW_ADMIN_PASSWORD: ADMIN.password, ...JWT },
    });
    edges = await Promise.all(
      ['e1', 'e2'].map((n) =>
        startGateway({
          args: ['--role', 'edge', '--engine', 'portable', '--bus', nats.url, '--node-id', `${n}-${tag}`],
          env: JWT,
        }),
      ),
    );
    await Promise.all(edges.map((e) => waitReady(e)));
    api = await ApiClient.as(admin.adminUrl, ADMIN.name, ADMIN.password);
    const created = [
      await api.call('POST', '/operators', { id: 'op1', name: 'Operator' }),
      await api.call('POST', '/service-profiles', {
        id: 'quick',
        name: 'Quick heartbeat',
        services: ['mail', 'im'],
        policies: {
          maxAttachmentBytes: 0,
          bodyTruncateBytes: 0,
          imageQuality: 60,
          heartbeatMs: HEARTBEAT_MS,
        },
      }),
    ];
    for (const r of created) assert.equal(r.status, 201, r.text);
    bus = await connectNatsBus({ servers: nats.url, name: 'failover-test' });
  });

  after(async () => {
    for (const h of handsets) await h.close().catch(() => {});
    await bus?.close();
    for (const e of edges ?? []) {
      // A test that failed while an edge was frozen must not leave it stopped.
      if (e.process.exitCode === null) e.process.kill('SIGCONT');
    }
    await Promise.all([...(edges ?? []).map((e) => e.stop()), admin?.stop()]);
    await nats?.stop();
  });

  async function device(): Promise<{ imei: string; secret: string }> {
    const r = await api.call('POST', '/devices', {
      imei: nextImei(),
      operator: 'op1',
      serviceProfile: 'quick',
    });
    assert.equal(r.status, 201, r.text);
    return { imei: r.json.device.imei, secret: r.json.secret };
  }

  function handset(dev: { imei: string; secret: string }, urls: string[], transport: 'ws' | 'poll' = 'ws') {
    const h = new Handset({
      urls,
      imei: dev.imei,
      secret: dev.secret,
      transport,
      WebSocket,
      backoff: { initialMs: 100, maxMs: 1000 },
    });
    handsets.push(h);
    const rec: Recorded = { events: [], connected: [], disconnected: [], reconnecting: [], errors: [] };
    h.on('event', (e) => rec.events.push(e));
    h.on('connected', (e) => rec.connected.push(e));
    h.on('disconnected', (e) => rec.disconnected.push({ ...e, at: Date.now() }));
    h.on('reconnecting', (e) => rec.reconnecting.push(e));
    h.on('error', (e) => rec.errors.push(e));
    return { h, rec };
  }

  /**
   * Pushes event `n` to the device the way a transport does; resolves with its seq once an edge
   * took it. Nobody listening means nobody got it (the session's subscription may reach the
   * NATS server a moment after its Welcome): asked again.
   */
  const push = (imei: string, n: number) =>
    eventually(
      `push ${n} taken`,
      () =>
        bus
          .request<{ seq: number }>(
            Subjects.device(imei),
            { type: 'event', name: 'test.push', body: { n } },
            { timeoutMs: WAIT.timeoutMs },
          )
          .catch((err: GatewayError) => {
            if (err.code === 'bus.no_responders') return undefined;
            // Anything else may have reached an edge: asking again could double it.
            assert.fail(`push ${n}: ${err.code} ${err.message}`);
          }),
      WAIT,
    );

  const numbers = (rec: Recorded) => rec.events.map((e) => (e.body as { n: number }).n);

  test('the first URL refuses connections: the handset connects to the second', async () => {
    const [, e2] = edges;
    assert.ok(e2);
    const down = `ws://127.0.0.1:${await freePort()}`;
    const dev = await device();
    const { h, rec } = handset(dev, [down, e2.url]);
    const welcome = await h.connect();
    assert.equal(welcome.heartbeatMs, HEARTBEAT_MS, "the service profile's heartbeat");
    assert.equal(rec.connected[0]?.url, e2.url);
    assert.equal(rec.reconnecting[0]?.url, e2.url);
    await push(dev.imei, 1);
    await eventually('the push', () => rec.events.length === 1, WAIT);
    assert.deepEqual(numbers(rec), [1]);
  });

  for (const [transport, holder] of [
    ['ws', 0],
    ['poll', 1],
  ] as const) {
    test(`${transport}: a frozen edge is noticed within 2 heartbeats; the session resumes on the other, nothing lost or doubled`, async () => {
      const e1 = edges[holder];
      const e2 = edges[1 - holder];
      assert.ok(e1 && e2);
      const dev = await device();
      const { h, rec } = handset(dev, [e1.url, e2.url], transport);
      await h.connect();
      assert.equal(rec.connected[0]?.url, e1.url);
      for (const n of [1, 2, 3]) await push(dev.imei, n);
      await eventually('the first pushes', () => rec.events.length === 3, WAIT);

      process.kill(e1.pid, 'SIGSTOP');
      const frozenAt = Date.now();
      let thawed = false;
      try {
        // Pushed while the holder is frozen: they wait in its socket, or on the other edge for its claim.
        const during = [4, 5, 6].map((n) => push(dev.imei, n));
        for (const p of during) p.catch(() => {});
        await eventually('the frozen carrier noticed', () => rec.disconnected.length > 0, WAIT);
        const noticed = rec.disconnected[0];
        assert.equal(noticed?.code, 'session.heartbeat_timeout');
        // 2 heartbeats after the last frame, which came at most a heartbeat's Pong before the freeze;
        // the margin is for timers under load.
        const noticedAfterMs = (noticed?.at ?? 0) - frozenAt;
        assert.ok(
          noticedAfterMs <= 2 * HEARTBEAT_MS + 1000,
          `noticed ${noticedAfterMs} ms after the freeze (heartbeat ${HEARTBEAT_MS} ms)`,
        );
        await eventually(
          'the handset on the other edge',
          () => rec.reconnecting.some((r) => r.url === e2.url),
          WAIT,
        );
        // The other edge answers while the holder cannot hand the session over yet.
        await eventually(
          'an answer from the other edge',
          () => rec.errors.some((e) => e.code === 'session.busy'),
          WAIT,
        );
        process.kill(e1.pid, 'SIGCONT');
        thawed = true;
        await eventually('resumed on the other edge', () => rec.connected.length >= 2, WAIT);
        assert.deepEqual(
          rec.connected.slice(1).map((c) => [c.url, c.resumed]),
          [[e2.url, true]],
        );
        await Promise.all(during);
        // Delivered in seq order: a double of an earlier push would come before the last one.
        for (const n of [7, 8]) await push(dev.imei, n);
        await eventually('every push', () => numbers(rec).includes(8), WAIT);
        assert.deepEqual(numbers(rec), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert.equal(h.url, e2.url);
      } catch (err) {
        // What the handset went through, for the failure report.
        const seen = { ...rec, errors: rec.errors.map((e) => e.code), frozenAt, frozen: e1.url };
        console.error(`${transport} handset: ${JSON.stringify(seen)}`);
        throw err;
      } finally {
        if (!thawed) process.kill(e1.pid, 'SIGCONT');
      }
    });
  }
});
