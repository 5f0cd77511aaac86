/**
 * The edge over real sockets, for both engines and both carriers: auth and
 * every refusal, resume with replay, takeover, requests, carrier switch.
 * (Limits: edge-limits.test.ts; several edges and workers: edge-cluster.test.ts.)
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventually } from '../../testing/index.ts';
import jwt from 'jsonwebtoken';
import WebSocket from 'ws';
import { Handset } from '../../device-protocol/handset.ts';
import { type ErrorFrame, type Event, Kind } from '../../device-protocol/messages.ts';
import {
  CARRIERS,
  ENGINES,
  WAIT,
  JWT_SECRET,
  PollRawClient,
  startEchoTransport,
  startDropProxy,
  startTestEdge,
} from './edge-client.ts';

const IMEI_A = '356938035643809';
const IMEI_B = '490154203237518';
const SECRET = 'device-secret-a';

function seqs(events: Event[]): number[] {
  return events.map((e) => e.seq);
}

for (const engine of ENGINES) {
  for (const carrier of CARRIERS) {
    describe(`edge ${engine} / ${carrier}`, () => {
      test('Hello with the secret is welcomed; the token in Welcome authenticates a later Hello', async (t) => {
        const e = await startTestEdge(t, { engine, heartbeatMs: 20_000, resumeWindowMs: 60_000 });
        e.directory.add(IMEI_A, SECRET);
        const c = await e.client(carrier);
        const w = await c.hello(IMEI_A, { secret: SECRET });
        assert.equal(w.resumed, false);
        assert.equal(w.lastSeq, 0);
        assert.equal(w.heartbeatMs, 20_000);
        assert.equal(w.resumeWindowMs, 60_000);
        assert.ok(w.sessionId.startsWith(`${IMEI_A}.`));
        assert.match(w.resumeToken, /^[A-Za-z0-9_-]{22}$/);
        const claims = jwt.verify(w.token, JWT_SECRET, { algorithms: ['HS256'] }) as jwt.JwtPayload;
        assert.equal(claims.sub, IMEI_A);
        assert.equal(claims.sid, w.sessionId);
        assert.equal(w.tokenExpiresAt, (claims.exp as number) * 1000);
        assert.equal(e.edge.sessionCount(), 1);

        const c2 = await e.client(carrier);
        const w2 = await c2.hello(IMEI_A, { token: w.token });
        assert.notEqual(w2.sessionId, w.sessionId);
        assert.equal(await e.counter('mmgw_edge_auth_failures_total'), 0);
      });

      if (carrier === 'ws') {
        test('devices online vs sessions held: a dropped carrier leaves its session waiting for a resume', async (t) => {
          const e = await startTestEdge(t, { engine, resumeWindowMs: 60_000 });
          e.directory.add(IMEI_A, SECRET);
          e.directory.add(IMEI_B, 'secret-b');
          const a = await e.client(carrier);
          const w = await a.hello(IMEI_A, { secret: SECRET });
          const b = await e.client(carrier);
          await b.hello(IMEI_B, { secret: 'secret-b' });
          assert.deepEqual([e.edge.connectedCount(), e.edge.sessionCount()], [2, 2]);
          a.kill();
          await eventually('the edge to notice the drop', () => e.edge.connectedCount() === 1, WAIT);
          assert.equal(e.edge.sessionCount(), 2, 'the session waits for its resume');
          const again = await e.client(carrier);
          await again.resume(w, 0);
          assert.deepEqual([e.edge.connectedCount(), e.edge.sessionCount()], [2, 2]);
        });
      }

      test('refusals: unknown device, bad secret, disabled, bad token, expired token; another device unaffected', async (t) => {
        const e = await startTestEdge(t, { engine });
        e.directory.add(IMEI_A, SECRET);
        e.directory.add(IMEI_B, 'secret-b');
        e.directory.add('353918057817310', 'secret-c', 'disabled');
        const b = await e.client(carrier);
        await b.hello(IMEI_B, { secret: 'secret-b' });

        const expired = jwt.sign(
          { sub: IMEI_A, sid: 'x', exp: Math.floor(Date.now() / 1000) - 60 },
          JWT_SECRET,
          {
            algorithm: 'HS256',
          },
        );
        const otherDevice = jwt.sign({ sub: IMEI_B, exp: Math.floor(Date.now() / 1000) + 60 }, JWT_SECRET, {
          algorithm: 'HS256',
        });
        const wrongKey = jwt.sign(
          { sub: IMEI_A, exp: Math.floor(Date.now() / 1000) + 60 },
          'another-key-0123456789',
          {
            algorithm: 'HS256',
          },
        );
        const unsigned = jwt.sign({ sub: IMEI_A, exp: Math.floor(Date.now() / 1000) + 60 }, '', {
          algorithm: 'none',
        });
        const cases: [string, { secret?: string; token?: string }, string][] = [
          ['012345678901234', { secret: SECRET }, 'auth.unknown_device'],
          [IMEI_A, { secret: 'wrong' }, 'auth.bad_secret'],
          ['353918057817310', { secret: 'secret-c' }, 'auth.disabled'],
          [IMEI_A, { token: 'not.a.jwt' }, 'auth.bad_token'],
          [IMEI_A, { token: otherDevice }, 'auth.bad_token'],
          [IMEI_A, { token: wrongKey }, 'auth.bad_token'],
          [IMEI_A, { token: unsigned }, 'auth.bad_token'],
          [IMEI_A, { token: expired }, 'auth.token_expired'],
        ];
        for (const [imei, auth, code] of cases) {
          const c = await e.client(carrier);
          const answer = await c.helloAnswer(imei, auth);
          assert.equal(answer.kind, Kind.Error, `${code}: expected an Error`);
          assert.equal((answer as ErrorFrame).code, code);
          assert.equal((answer as ErrorFrame).fatal, true);
          const closed = await c.waitClosed();
          if (carrier === 'poll') assert.equal(closed.code, 401, code);
          else assert.equal(closed.code, 4001, code);
          assert.equal((await e.counter('mmgw_edge_auth_failures_total', code)) > 0, true, code);
        }
        assert.equal(await e.counter('mmgw_edge_auth_failures_total'), cases.length);
        // Device B never noticed.
        await e.push(IMEI_B, 'still-here');
        const ev = await b.nextOf(Kind.Event);
        assert.equal(ev.name, 'still-here');
        assert.equal(b.closeInfo, undefined);
        assert.equal(e.edge.sessionCount(), 1);
      });

      test('a first frame other than Hello or Resume is protocol.bad_state', async (t) => {
        const e = await startTestEdge(t, { engine });
        const c = await e.client(carrier);
        await c.send({ kind: Kind.Ack, seq: 1 });
        const f = await c.next();
        assert.equal(f.kind, Kind.Error);
        assert.equal((f as ErrorFrame).code, 'protocol.bad_state');
        await c.waitClosed();
      });

      test('resume after an abrupt disconnect replays exactly the missed events; dedup shows each once', async (t) => {
        const e = await startTestEdge(t, { engine, heartbeatMs: 20_000 });
        e.directory.add(IMEI_A, SECRET);
        const c1 = await e.client(carrier);
        const w = await c1.hello(IMEI_A, { secret: SECRET });
        for (let i = 1; i <= 5; i++) assert.equal(await e.push(IMEI_A, `ev${i}`, { i }), i);
        assert.deepEqual(seqs(await c1.waitEvents(5)), [1, 2, 3, 4, 5]);
        await c1.ack(2);
        c1.kill();
        // The edge notices (or not yet): either way, events pushed now wait in the replay buffer.
        for (let i = 6; i <= 8; i++) assert.equal(await e.push(IMEI_A, `ev${i}`, { i }), i);

        // Over WebSocket the device lost 4 and 5 in flight (it saw up to 3). A long-poll
        // device acked all it saw with its GETs (ack=), so it cannot have lost any.
        const seen = carrier === 'ws' ? 3 : 5;
        const expected = Array.from({ length: 8 - seen }, (_, i) => seen + 1 + i);
        const c2 = await e.client(carrier);
        const w2 = await c2.resume(w, seen);
        assert.equal(w2.resumed, true);
        assert.equal(w2.sessionId, w.sessionId);
        assert.equal(w2.lastSeq, 8);
        const replay = await c2.waitEvents(expected.length);
        assert.deepEqual(seqs(replay), expected);
        // Exactly the missed ones: nothing at or before `seen` was sent again.
        const raw = c2.received.filter((f) => f.kind === Kind.Event) as Event[];
        assert.deepEqual(seqs(raw), expected);
        // The application (dedup by seq across both carriers) sees 1..8 once each.
        const app = new Map<number, string>();
        for (const ev of [...c1.events(), ...c2.events()]) if (!app.has(ev.seq)) app.set(ev.seq, ev.name);
        assert.deepEqual(
          [...app.keys()].sort((a, b) => a - b),
          [1, 2, 3, 4, 5, 6, 7, 8],
        );
        assert.equal(await e.counter('mmgw_edge_resumes_total'), 1);

        // A resume token that is wrong is refused and leaves the session alone.
        const c3 = await e.client(carrier);
        const bad = await c3.resumeAnswer({ ...w, resumeToken: 'A'.repeat(22) }, 8);
        assert.equal(bad.kind, Kind.Error);
        assert.equal((bad as ErrorFrame).code, 'auth.resume_failed');
        assert.equal(await e.counter('mmgw_edge_resume_failures_total', 'auth.resume_failed'), 1);
        assert.equal(await e.counter('mmgw_edge_logins_total'), 1);
        await e.push(IMEI_A, 'ev9');
        assert.deepEqual(seqs(await c2.waitEvents(expected.length + 1)), [...expected, 9]);
      });

      test('takeover: a second Hello of the device ends the first session with session.replaced', async (t) => {
        const e = await startTestEdge(t, { engine });
        e.directory.add(IMEI_A, SECRET);
        const c1 = await e.client(carrier);
        const w1 = await c1.hello(IMEI_A, { secret: SECRET });
        const c2 = await e.client(carrier);
        const w2 = await c2.hello(IMEI_A, { secret: SECRET });
        assert.notEqual(w2.sessionId, w1.sessionId);
        const bye = await c1.nextOf(Kind.Bye);
        assert.equal(bye.code, 'session.replaced');
        assert.equal(bye.resumable, false);
        await c1.waitClosed();
        assert.equal(e.edge.sessionCount(), 1);
        await e.push(IMEI_A, 'to-the-new-one');
        assert.equal((await c2.nextOf(Kind.Event)).name, 'to-the-new-one');
        // The replaced session cannot be resumed.
        const c3 = await e.client(carrier);
        const answer = await c3.resumeAnswer(w1, 0);
        assert.equal((answer as ErrorFrame).code, 'auth.resume_failed');
      });

      test('requests: routed to the transport, repeats answered from memory, errors sequenced', async (t) => {
        const bus = new (await import('../../server/bus/inproc.ts')).InProcessBus();
        t.after(() => bus.close());
        const transport = startEchoTransport(bus);
        let route: string | undefined = 'transport-1';
        const e = await startTestEdge(t, { engine, bus, router: { pick: () => route } });
        e.directory.add(IMEI_A, SECRET);
        const c = await e.client(carrier);
        const w = await c.hello(IMEI_A, { secret: SECRET });

        await c.send({ kind: Kind.Request, id: 'r1', method: 'echo', body: { hello: [1, 'two', true] } });
        const r1 = await c.nextOf(Kind.Response);
        assert.deepEqual(r1, { kind: Kind.Response, seq: 1, id: 'r1', body: { hello: [1, 'two', true] } });
        assert.equal(transport.calls.length, 1);
        const { budgetMs, ...call } = transport.calls[0] as { budgetMs: number };
        assert.deepEqual(call, {
          deviceId: IMEI_A,
          sessionId: w.sessionId,
          id: 'r1',
          method: 'echo',
          body: { hello: [1, 'two', true] },
        });
        // How long the edge waits: the transport's deadline for what it cannot take back, counted
        // from the request's arrival (a millisecond may pass before it is sent on).
        assert.ok(budgetMs > 29_000 && budgetMs <= 30_000, `budgetMs ${budgetMs}`);

        await c.send({ kind: Kind.Request, id: 'r2', method: 'fail' });
        const r2 = await c.nextOf(Kind.Error);
        assert.equal(r2.seq, 2);
        assert.equal(r2.id, 'r2');
        assert.equal(r2.code, 'request.bad_input');
        assert.equal(r2.fatal, false);

        // In flight twice: executed once, answered once.
        await c.send({ kind: Kind.Request, id: 'r3', method: 'slow', body: 3 });
        await c.send({ kind: Kind.Request, id: 'r3', method: 'slow', body: 3 });
        const r3 = await c.nextOf(Kind.Response);
        assert.equal(r3.seq, 3);
        assert.equal(transport.calls.filter((x) => x.id === 'r3').length, 1);

        // No transport node: retryable request.unavailable, not remembered.
        route = undefined;
        await c.send({ kind: Kind.Request, id: 'r4', method: 'echo', body: 4 });
        const r4 = await c.nextOf(Kind.Error);
        assert.equal(r4.code, 'request.unavailable');
        assert.equal(r4.seq, 4);
        route = 'transport-1';
        await c.send({ kind: Kind.Request, id: 'r4', method: 'echo', body: 4 });
        const r4b = await c.nextOf(Kind.Response);
        assert.equal(r4b.seq, 5);
        assert.equal(r4b.body, 4);

        // After a reconnect the device resends r1 (it missed the answer): answered from memory.
        // (A long-poll device acked what it saw with its GETs; over WebSocket nothing was acked.)
        const acked = carrier === 'ws' ? 0 : c.lastSeq();
        c.kill();
        const c2 = await e.client(carrier);
        await c2.resume(w, acked);
        const replayed = [];
        for (let i = acked; i < 5; i++) replayed.push(await c2.next());
        assert.deepEqual(
          replayed.map((f) => ('seq' in f ? f.seq : -1)),
          [1, 2, 3, 4, 5].slice(acked),
        );
        await c2.ack(5);
        await c2.send({ kind: Kind.Request, id: 'r5', method: 'echo', body: 5 });
        const r5 = await c2.nextOf(Kind.Response);
        assert.equal(r5.seq, 6);
        const before = transport.calls.length;
        await c2.send({ kind: Kind.Request, id: 'r5', method: 'echo', body: 5 });
        await c2.send({ kind: Kind.Ping, nonce: 99 });
        // The Pong proves the repeat was handled; an unacked answer is sent again with its own seq.
        for (;;) {
          const f = await c2.next();
          if (f.kind === Kind.Pong) break;
          assert.equal(f.kind, Kind.Response);
          assert.equal((f as { seq: number }).seq, 6);
        }
        assert.equal(transport.calls.length, before, 'a repeated id is not executed again');
      });
    });
  }

  describe(`edge ${engine}: switching carrier`, () => {
    test('ws → poll → ws keeps the session and its seq; the old carrier gets session.moved', async (t) => {
      const e = await startTestEdge(t, { engine, heartbeatMs: 20_000 });
      e.directory.add(IMEI_A, SECRET);
      const ws1 = await e.client('ws');
      const w = await ws1.hello(IMEI_A, { secret: SECRET });
      await e.push(IMEI_A, 'one');
      await e.push(IMEI_A, 'two');
      await ws1.waitEvents(2);

      const poll = (await e.client('poll')) as PollRawClient;
      const wp = await poll.resume(w, 2);
      assert.equal(wp.sessionId, w.sessionId);
      assert.equal(wp.lastSeq, 2);
      const moved = await ws1.nextOf(Kind.Bye);
      assert.equal(moved.code, 'session.moved');
      assert.equal(moved.resumable, true);
      await ws1.waitClosed();
      assert.equal(await e.push(IMEI_A, 'three'), 3);
      assert.deepEqual(seqs(await poll.waitEvents(1)), [3]);

      const ws2 = await e.client('ws');
      const w2 = await ws2.resume(w, 3);
      assert.equal(w2.lastSeq, 3);
      const pollBye = await poll.nextOf(Kind.Bye);
      assert.equal(pollBye.code, 'session.moved');
      assert.equal(await e.push(IMEI_A, 'four'), 4);
      assert.deepEqual(seqs(await ws2.waitEvents(1)), [4]);
      assert.equal(e.edge.sessionCount(), 1);
      // A poll request on the session that moved away is answered 410.
      const stale = new PollRawClient(e.port);
      stale.sessionHeaders = { 'X-MMGW-Session': w.sessionId, 'X-MMGW-Token': w.resumeToken };
      assert.equal(await stale.getOnce('?wait=0'), 410);
    });

    test('the Handset SDK sees each event once across dropped connections', async (t) => {
      const e = await startTestEdge(t, { engine, heartbeatMs: 20_000 });
      e.directory.add(IMEI_A, SECRET);
      const proxy = await startDropProxy(e.port);
      t.after(() => proxy.close());
      const handset = new Handset({
        url: `ws://127.0.0.1:${proxy.port}`,
        imei: IMEI_A,
        secret: SECRET,
        transport: 'ws',
        WebSocket,
        backoff: { initialMs: 10, maxMs: 50 },
        ackIntervalMs: 20,
      });
      t.after(() => handset.close());
      const seen: number[] = [];
      let resumes = 0;
      handset.on('event', (ev) => seen.push(ev.body as number));
      handset.on('connected', (ev) => {
        if (ev.resumed) resumes++;
      });
      await handset.connect();
      for (let i = 1; i <= 60; i++) {
        await e.push(IMEI_A, 'n', i);
        // Cut the network now and then, with events in flight.
        if (i % 20 === 10) proxy.dropAll();
      }
      await eventually('60 events', () => seen.length >= 60, WAIT);
      assert.deepEqual(
        seen,
        Array.from({ length: 60 }, (_, i) => i + 1),
      );
      assert.ok(resumes >= 1, 'the handset resumed');
    });
  });
}
