/**
 * Authentication attempt limits over real sockets (SPEC.md §5.5), with the
 * defaults: 10 failures a minute per IMEI, 100 per source address. A device
 * over its limit is refused with a fatal auth.rate_limited carrying
 * retryAfterMs (HTTP 429 on long-poll); successes are never counted.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type ErrorFrame, Kind } from '../../device-protocol/messages.ts';
import { CARRIERS, ENGINES, PollRawClient, startTestEdge, type TestEdge } from './edge-client.ts';

const IMEI_A = '356938035643809';
const IMEI_B = '490154203237518';

async function attempt(e: TestEdge, kind: 'ws' | 'poll', imei: string, secret: string) {
  const c = await e.client(kind);
  const answer = await c.helloAnswer(imei, { secret });
  if (answer.kind === Kind.Error) await c.waitClosed();
  else c.kill();
  return { answer, c };
}

for (const engine of ENGINES) {
  for (const kind of CARRIERS) {
    describe(`auth attempt limits ${engine} / ${kind}`, () => {
      test('10 failures of one IMEI: the 11th attempt is auth.rate_limited, even with the right secret; other devices go on', async (t) => {
        const e = await startTestEdge(t, { engine, now: () => 1_800_000_000_000 });
        e.directory.add(IMEI_A, 'secret-a');
        e.directory.add(IMEI_B, 'secret-b');
        for (let i = 0; i < 10; i++) {
          const { answer } = await attempt(e, kind, IMEI_A, 'wrong');
          assert.equal((answer as ErrorFrame).code, 'auth.bad_secret', `attempt ${i + 1}`);
        }
        const { answer, c } = await attempt(e, kind, IMEI_A, 'secret-a');
        const f = answer as ErrorFrame;
        assert.equal(f.code, 'auth.rate_limited');
        assert.equal(f.fatal, true);
        assert.ok(
          (f.retryAfterMs ?? 0) > 0 && (f.retryAfterMs ?? 0) <= 60_000,
          `retryAfterMs ${f.retryAfterMs}`,
        );
        if (c instanceof PollRawClient) assert.equal(c.statuses.at(-1), 429);
        assert.equal(await e.counter('mmgw_edge_auth_failures_total', 'auth.rate_limited'), 1);
        // Same address, another device: not limited.
        const { answer: ok } = await attempt(e, kind, IMEI_B, 'secret-b');
        assert.equal(ok.kind, Kind.Welcome);
      });

      test('successes are not counted: many logins in a row all succeed', async (t) => {
        const e = await startTestEdge(t, { engine });
        e.directory.add(IMEI_A, 'secret-a');
        for (let i = 0; i < 30; i++) {
          const { answer } = await attempt(e, kind, IMEI_A, 'secret-a');
          assert.equal(answer.kind, Kind.Welcome, `login ${i + 1}`);
        }
      });
    });
  }

  test(`auth attempt limits ${engine}: 100 failures from one address limit every device from it`, async (t) => {
    // A clock that stands still: the buckets must not refill while the test makes its 100 attempts.
    const e = await startTestEdge(t, { engine, now: () => 1_800_000_000_000 });
    e.directory.add(IMEI_A, 'secret-a');
    // 100 unknown devices (distinct IMEIs, so no device bucket runs dry), one failure each.
    for (let i = 0; i < 100; i++) {
      const { answer } = await attempt(e, 'poll', `35693803${String(1_000_000 + i)}`, 'x');
      assert.equal((answer as ErrorFrame).code, 'auth.unknown_device');
    }
    const { answer } = await attempt(e, 'ws', IMEI_A, 'secret-a');
    assert.equal((answer as ErrorFrame).code, 'auth.rate_limited');
  });
}
