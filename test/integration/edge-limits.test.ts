/**
 * Per-device limits over real sockets, both engines and both carriers: each
 * ends the offending carrier with a typed fatal Error, never touches another
 * device's session, and (except a replay overflow) leaves the session
 * resumable.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventually } from '../../testing/index.ts';
import { encodeBatch, encodeFrame } from '../../device-protocol/codec.ts';
import {
  type Bye,
  type ErrorFrame,
  type Event,
  Kind,
  PROTOCOL_VERSION,
} from '../../device-protocol/messages.ts';
import {
  CARRIERS,
  ENGINES,
  WAIT,
  PollRawClient,
  type RawClient,
  startTestEdge,
  type TestEdge,
  type WsRawClient,
} from './edge-client.ts';

const IMEI_A = '356938035643809';
const IMEI_B = '490154203237518';
const PING = encodeFrame({ kind: Kind.Ping, nonce: 1 });

async function twoDevices(e: TestEdge, kind: 'ws' | 'poll') {
  e.directory.add(IMEI_A, 'secret-a');
  e.directory.add(IMEI_B, 'secret-b');
  const a = await e.client(kind);
  const wa = await a.hello(IMEI_A, { secret: 'secret-a' });
  const b = await e.client(kind);
  await b.hello(IMEI_B, { secret: 'secret-b' });
  return { a, wa, b };
}

/** B still holds its session: an event pushed now reaches it and its carrier is open. */
async function assertUnaffected(e: TestEdge, b: RawClient, name: string): Promise<void> {
  await e.push(IMEI_B, name);
  const ev = await b.nextOf(Kind.Event);
  assert.equal(ev.name, name);
  assert.equal(b.closeInfo, undefined, 'the other device stays connected');
}

async function fatalCode(c: RawClient): Promise<string> {
  const f = await c.nextOf(Kind.Error);
  assert.equal(f.fatal, true);
  await c.waitClosed();
  return f.code;
}

for (const engine of ENGINES) {
  for (const kind of CARRIERS) {
    describe(`edge limits ${engine} / ${kind}`, () => {
      test('garbage bytes: protocol.bad_frame ends that carrier only; the session can resume', async (t) => {
        const e = await startTestEdge(t, { engine });
        const { a, wa, b } = await twoDevices(e, kind);
        // Version byte right, then a Request whose first field key is a truncated varint.
        await a.sendBytes(new Uint8Array([0x01, 0x07, 0xff, 0xff, 0xff]));
        assert.equal(await fatalCode(a), 'protocol.bad_frame');
        // (The POST is answered 400; the held GET, answered too, may be read first.)
        if (a instanceof PollRawClient) assert.ok(a.statuses.includes(400), `statuses ${a.statuses}`);
        await assertUnaffected(e, b, 'after-garbage');
        const a2 = await e.client(kind);
        const w2 = await a2.resume(wa, 0);
        assert.equal(w2.sessionId, wa.sessionId);

        // Random bytes (whatever the first byte says) are a protocol.* error too.
        const a3 = await e.client(kind);
        await a3.sendBytes(new Uint8Array([0xde, 0xad, 0xbe, 0xef, 0x00, 0x42]));
        assert.match(await fatalCode(a3), /^protocol\./);
        await assertUnaffected(e, b, 'after-random');
      });

      if (kind === 'ws') {
        test('a text message is protocol.bad_frame', async (t) => {
          const e = await startTestEdge(t, { engine });
          const { a, b } = await twoDevices(e, kind);
          await (a as WsRawClient).sendText('hello?');
          assert.equal(await fatalCode(a), 'protocol.bad_frame');
          await assertUnaffected(e, b, 'after-text');
        });
      } else {
        test('a body that is not a batch is refused with 400', async (t) => {
          const e = await startTestEdge(t, { engine });
          const { b } = await twoDevices(e, kind);
          const p = new PollRawClient(e.port);
          // Declares a 5-byte frame and ends after one byte.
          assert.equal(await p.post(new Uint8Array([0x05, 0x01])), 400);
          const f = p.last() as ErrorFrame;
          assert.equal(f.code, 'protocol.bad_frame');
          await assertUnaffected(e, b, 'after-bad-batch');
        });
      }

      test('an oversized frame: protocol.frame_too_large', async (t) => {
        const e = await startTestEdge(t, { engine, limits: { maxFrameBytes: 1024 } });
        const { a, wa, b } = await twoDevices(e, kind);
        assert.equal(wa.maxFrameBytes, 1024);
        await a.send({ kind: Kind.Request, id: 'big', method: 'echo', body: 'x'.repeat(2000) });
        assert.equal(await fatalCode(a), 'protocol.frame_too_large');
        await assertUnaffected(e, b, 'after-oversize');
        // A frame just under the limit is fine.
        await b.send({ kind: Kind.Request, id: 'ok', method: 'echo', body: 'y'.repeat(900) });
        assert.equal((await b.nextOf(Kind.Response)).id, 'ok');
      });

      test('fresh carriers bring no fresh bucket: Resume after Resume, the device gets its burst once', async (t) => {
        // A clock that stands still: nothing refills, so what gets through is what the buckets held.
        const e = await startTestEdge(t, {
          engine,
          now: () => 1_800_000_000_000,
          limits: { maxFramesPerSecond: 10, burstFrames: 20 },
        });
        e.directory.add(IMEI_A, 'secret-a');
        const first = await e.client(kind);
        const w = await first.hello(IMEI_A, { secret: 'secret-a' });
        let c: RawClient = first;
        let served = 0;
        for (let round = 0; round < 5; round++) {
          if (round > 0) {
            c = await e.client(kind);
            if (kind === 'ws' && round % 2 === 0) {
              // Frames right behind the Resume (handled after Welcome) are the session's too.
              void c.send({
                kind: Kind.Resume,
                version: PROTOCOL_VERSION,
                sessionId: w.sessionId,
                resumeToken: w.resumeToken,
                lastSeq: 0,
              });
              for (let i = 0; i < 30; i++) void c.sendBytes(PING);
              await c.waitClosed();
              assert.equal(c.received[0]?.kind, Kind.Welcome, `resume ${round}`);
              served += c.received.filter((x) => x.kind === Kind.Pong).length;
              assert.equal((c.last() as ErrorFrame).code, 'session.rate_limited', `round ${round}`);
              continue;
            }
            assert.equal((await c.resumeAnswer(w, 0)).kind, Kind.Welcome, `resume ${round}`);
          }
          if (c instanceof PollRawClient) {
            c.pauseReading(); // no GETs of its own: only the POSTs below take tokens
            for (let i = 0; i < 30 && (await c.post(encodeBatch([PING]))) === 200; i++) served++;
          } else {
            for (let i = 0; i < 30; i++) void c.sendBytes(PING);
            await c.waitClosed();
            served += c.received.filter((x) => x.kind === Kind.Pong).length;
          }
          assert.equal((c.last() as ErrorFrame).code, 'session.rate_limited', `round ${round}`);
        }
        // Per carrier, five carriers would have served five bursts (100 frames).
        assert.ok(served <= 20, `frames served over five carriers: ${served}`);
      });

      test('a frame flood: session.rate_limited for that device only', async (t) => {
        const e = await startTestEdge(t, { engine, limits: { maxFramesPerSecond: 10, burstFrames: 20 } });
        const { a, wa, b } = await twoDevices(e, kind);
        const ping = encodeFrame({ kind: Kind.Ping, nonce: 1 });
        if (a instanceof PollRawClient) {
          const status = await a.post(
            (await import('../../device-protocol/codec.ts')).encodeBatch(
              Array.from({ length: 100 }, () => ping),
            ),
          );
          assert.equal(status, 429);
        } else {
          for (let i = 0; i < 100; i++) void a.sendBytes(ping);
        }
        const f = await a.nextOf(Kind.Error);
        assert.equal(f.code, 'session.rate_limited');
        assert.equal(f.fatal, true);
        assert.ok((f.retryAfterMs ?? 0) > 0);
        await a.waitClosed();
        const pongs = a.received.filter((x) => x.kind === Kind.Pong).length;
        assert.ok(pongs <= 20, `at most the burst was served (${pongs})`);
        await assertUnaffected(e, b, 'after-flood');
        await b.send({ kind: Kind.Ping, nonce: 2 });
        assert.equal((await b.nextOf(Kind.Pong)).nonce, 2);
        assert.ok((await e.counter('mmgw_edge_carrier_closes_total', 'session.rate_limited')) >= 1);
        // The session itself survives: it resumes.
        const a2 = await e.client(kind);
        assert.equal((await a2.resume(wa, 0)).sessionId, wa.sessionId);
      });

      if (kind === 'ws') {
        test('slow reader: session.backpressure (resumable), then a resume delivers everything once', async (t) => {
          const e = await startTestEdge(t, {
            engine,
            heartbeatMs: 60_000,
            limits: { maxQueuedBytes: 64 * 1024, maxReplayFrames: 100_000, maxReplayBytes: 1 << 30 },
          });
          const { a, wa, b } = await twoDevices(e, kind);
          a.pauseReading();
          const body = new Uint8Array(32 * 1024).fill(7);
          let n = 0;
          // Kernel buffers absorb a few MB first; the edge's own queue trips after that.
          while ((await e.counter('mmgw_edge_carrier_closes_total', 'session.backpressure')) === 0) {
            n++;
            assert.equal(await e.push(IMEI_A, 'big', body), n);
            assert.ok(n < 8000, 'the backpressure limit was never hit');
          }
          await assertUnaffected(e, b, 'during-backpressure');
          a.resumeReading();
          const closed = await a.waitClosed();
          const last = a.last() as ErrorFrame;
          assert.equal(last.kind, Kind.Error, `last frame before the close (close code ${closed.code})`);
          assert.equal(last.code, 'session.backpressure');
          assert.equal(last.fatal, true);
          assert.equal(e.edge.sessionCount(), 2, 'the session is detached, not ended');
          // Every frame written before the limit tripped still arrives, in order, then the Error.
          // (Live frames leave once per turn, so the last push or two may have been appended
          // after the trip: those wait in the replay buffer for the resume below.)
          const seen = a.lastSeq();
          assert.ok(seen >= 1 && seen <= n, `seen ${seen} of ${n}`);
          assert.deepEqual(
            a.events().map((x) => x.seq),
            Array.from({ length: seen }, (_, i) => i + 1),
          );
          // More events while detached, then resume.
          for (let i = 1; i <= 3; i++) await e.push(IMEI_A, 'after', i);
          const a2 = await e.client(kind);
          const w2 = await a2.resume(wa, seen);
          assert.equal(w2.lastSeq, n + 3);
          const got = await a2.waitEvents(n + 3 - seen);
          assert.deepEqual(
            got.map((x) => x.seq),
            Array.from({ length: n + 3 - seen }, (_, i) => seen + 1 + i),
          );
          const raw = a2.received.filter((x) => x.kind === Kind.Event) as Event[];
          assert.equal(raw.length, n + 3 - seen, 'no duplicates in the replay');
          assert.equal(a2.closeInfo, undefined, 'the paced replay did not trip the limit again');
        });
      } else {
        test('slow reader: a device that stops polling overflows its replay buffer and must start anew', async (t) => {
          const e = await startTestEdge(t, { engine, heartbeatMs: 60_000, limits: { maxReplayFrames: 10 } });
          const { a, wa, b } = await twoDevices(e, kind);
          a.pauseReading();
          for (let i = 1; i <= 10; i++) assert.equal(await e.push(IMEI_A, 'ev', i), i);
          await assert.rejects(e.push(IMEI_A, 'ev', 11), { code: 'session.backpressure' });
          assert.equal(e.edge.sessionCount(), 1, 'the overflowing session ended');
          await assertUnaffected(e, b, 'after-overflow');
          a.resumeReading();
          const closed = await a.waitClosed();
          assert.equal(closed.code, 410);
          const bye = a.last() as Bye;
          assert.equal(bye.kind, Kind.Bye);
          assert.equal(bye.code, 'session.backpressure');
          assert.equal(bye.resumable, false);
          const a2 = await e.client(kind);
          const answer = await a2.resumeAnswer(wa, 0);
          assert.equal((answer as ErrorFrame).code, 'auth.resume_failed');
        });
      }

      test('heartbeat: a silent carrier is closed, its session kept for resume', async (t) => {
        const e = await startTestEdge(t, { engine, heartbeatMs: 100, resumeWindowMs: 60_000 });
        e.directory.add(IMEI_A, 'secret-a');
        const a = await e.client(kind);
        const wa = await a.hello(IMEI_A, { secret: 'secret-a' });
        if (kind === 'ws') {
          assert.equal(await fatalCode(a), 'session.heartbeat_timeout');
        } else {
          a.pauseReading();
          await eventually(
            'the heartbeat timeout',
            async () => (await e.counter('mmgw_edge_carrier_closes_total', 'session.heartbeat_timeout')) > 0,
            WAIT,
          );
          a.resumeReading();
          const closed = await a.waitClosed();
          assert.equal(closed.code, 410);
          assert.equal((a.last() as ErrorFrame).code, 'session.heartbeat_timeout');
        }
        assert.equal(e.edge.sessionCount(), 1);
        const a2 = await e.client(kind);
        assert.equal((await a2.resume(wa, 0)).sessionId, wa.sessionId);
      });

      test('resume window: a detached session expires', async (t) => {
        const e = await startTestEdge(t, { engine, heartbeatMs: 100, resumeWindowMs: 200 });
        e.directory.add(IMEI_A, 'secret-a');
        const a = await e.client(kind);
        const wa = await a.hello(IMEI_A, { secret: 'secret-a' });
        a.kill();
        await eventually('the session to expire', () => e.edge.sessionCount() === 0, WAIT);
        await assert.rejects(e.push(IMEI_A, 'nobody'), { code: 'bus.no_responders' });
        const a2 = await e.client(kind);
        const answer = await a2.resumeAnswer(wa, 0);
        assert.equal((answer as ErrorFrame).code, 'auth.resume_failed');
      });
    });
  }
}
