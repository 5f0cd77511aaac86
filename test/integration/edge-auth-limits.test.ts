/**
 * Authentication attempt limits over real sockets (SPEC.md §5, Authentication
 * attempt limits), with the defaults: 10 failures a minute per (source
 * address, IMEI), 1,000 per source address. An attempt over a limit is
 * refused with a fatal auth.rate_limited carrying retryAfterMs (HTTP 429 on
 * long-poll); successes are never counted; and the limits cannot be turned on
 * a device: its right secret from another address, its resume token or its
 * token from any address are never refused because of others' failures.
 * Clients bind 127.0.0.x source addresses to be different peers.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type ErrorFrame, Kind, PROTOCOL_VERSION, type Welcome } from '../../device-protocol/messages.ts';
import { CARRIERS, ENGINES, PollRawClient, startTestEdge, type TestEdge } from './edge-client.ts';

const IMEI_A = '356938035643809';
const IMEI_B = '490154203237518';
const ATTACKER = '127.0.0.2';
const ELSEWHERE = '127.0.0.3';
/** A clock that stands still: buckets do not refill while a test makes its attempts. */
const FROZEN = () => 1_800_000_000_000;

async function attempt(e: TestEdge, kind: 'ws' | 'poll', imei: string, secret: string, from?: string) {
  const c = await e.client(kind, from);
  const answer = await c.helloAnswer(imei, { secret });
  if (answer.kind === Kind.Error) await c.waitClosed();
  else c.kill();
  return { answer, c };
}

const codeOf = (answer: Welcome | ErrorFrame): string =>
  answer.kind === Kind.Welcome ? 'welcome' : answer.code;

for (const engine of ENGINES) {
  for (const kind of CARRIERS) {
    describe(`auth attempt limits ${engine} / ${kind}`, () => {
      test('10 failures for one IMEI from one address: the 11th from there is auth.rate_limited, even with the right secret; other devices go on', async (t) => {
        const e = await startTestEdge(t, { engine, now: FROZEN });
        e.directory.add(IMEI_A, 'secret-a');
        e.directory.add(IMEI_B, 'secret-b');
        for (let i = 0; i < 10; i++) {
          const { answer } = await attempt(e, kind, IMEI_A, 'wrong');
          assert.equal(codeOf(answer), 'auth.bad_secret', `attempt ${i + 1}`);
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

      test('lockout: wrong secrets from one address refuse nobody elsewhere, nor a resume token or token from there', async (t) => {
        const e = await startTestEdge(t, { engine, now: FROZEN });
        e.directory.add(IMEI_A, 'secret-a');
        // The device has a session (opened from the address the attacker uses later: a carrier NAT).
        const device = await e.client(kind, ATTACKER);
        const w = await device.hello(IMEI_A, { secret: 'secret-a' });
        device.kill();
        for (let i = 0; i < 12; i++) await attempt(e, kind, IMEI_A, 'wrong', ATTACKER);
        assert.equal(
          codeOf((await attempt(e, kind, IMEI_A, 'secret-a', ATTACKER)).answer),
          'auth.rate_limited',
        );
        // A valid resume token from the attacker's address itself resumes.
        const resumed = await e.client(kind, ATTACKER);
        const r = await resumed.resumeAnswer(w, 0);
        assert.equal(codeOf(r), 'welcome');
        assert.equal((r as Welcome).sessionId, w.sessionId);
        resumed.kill();
        // So does a valid token (JWT Hello) from there.
        const byToken = await e.client(kind, ATTACKER);
        assert.equal(codeOf(await byToken.helloAnswer(IMEI_A, { token: w.token })), 'welcome');
        byToken.kill();
        // The right secret from another address gets Welcome.
        assert.equal(codeOf((await attempt(e, kind, IMEI_A, 'secret-a', ELSEWHERE)).answer), 'welcome');
        // A guessed resume token meets the limit.
        const guess = await e.client(kind, ATTACKER);
        await guess.send({
          kind: Kind.Resume,
          version: PROTOCOL_VERSION,
          sessionId: w.sessionId,
          resumeToken: 'guessed-resume-token00',
          lastSeq: 0,
        });
        assert.equal((await guess.nextOf(Kind.Error)).code, 'auth.rate_limited');
      });
    });
  }

  test(`auth attempt limits ${engine}: 100 unknown IMEIs from one address do not lock out a device behind it`, async (t) => {
    const e = await startTestEdge(t, { engine, now: FROZEN });
    e.directory.add(IMEI_A, 'secret-a');
    for (let i = 0; i < 100; i++) {
      const { answer } = await attempt(e, 'poll', `35693803${String(1_000_000 + i)}`, 'x', ATTACKER);
      assert.equal(codeOf(answer), 'auth.unknown_device');
    }
    assert.equal(codeOf((await attempt(e, 'ws', IMEI_A, 'secret-a', ATTACKER)).answer), 'welcome');
  });

  test(`auth attempt limits ${engine}: an address over its own limit is refused, other addresses and resume tokens are not`, async (t) => {
    const e = await startTestEdge(t, {
      engine,
      now: FROZEN,
      limits: { authFailuresPerAddressPerMinute: 20 },
    });
    e.directory.add(IMEI_A, 'secret-a');
    const device = await e.client('ws', ATTACKER);
    const w = await device.hello(IMEI_A, { secret: 'secret-a' });
    device.kill();
    for (let i = 0; i < 20; i++) await attempt(e, 'poll', `35693803${String(1_000_000 + i)}`, 'x', ATTACKER);
    assert.equal(codeOf((await attempt(e, 'ws', IMEI_A, 'secret-a', ATTACKER)).answer), 'auth.rate_limited');
    const resumed = await e.client('poll', ATTACKER);
    assert.equal(codeOf(await resumed.resumeAnswer(w, 0)), 'welcome');
    resumed.kill();
    assert.equal(codeOf((await attempt(e, 'ws', IMEI_A, 'secret-a', ELSEWHERE)).answer), 'welcome');
  });
}
