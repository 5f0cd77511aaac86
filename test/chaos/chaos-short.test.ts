/**
 * The short chaos run of `npm test`: the same cluster and fleet as
 * `npm run chaos`, 4 handsets, one cheap fault of each kind (shorter freeze
 * and outage; no rolling restart, which is seven restarts). A fault the gateway survives today must meet the targets of
 * issue 12 (no handset still down at the end, ≤ 5 s p99, 0 lost, 0 doubled,
 * in order, no human action); the others are listed in KNOWN_FAILURES with
 * what was measured, and run as `todo` (reported, not counted) until fixed.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { type FaultResult, runChaos } from './chaos.ts';
import { meetsTargets } from './report.ts';

const FAULTS = [
  'kill -9 admin-1',
  'SIGTERM transcoder-1',
  'SIGTERM edge-1',
  'kill -9 edge-1',
  'SIGSTOP transport-1',
  'kill -9 one NATS server',
  'all NATS servers down',
  'single-node mmgw start',
];

/**
 * Faults that miss the targets today, with what was measured, run as `todo`. None now: the last one,
 * every NATS server down (p99 11.9–12.1 s and 0 / 2 mails lost in the runs of 2026-12-07 06:03 and
 * 06:07 UTC), meets them since the NATS bus rides out an outage (server/bus/nats-link.ts); its times
 * count from the servers' return (analysis.ts, FaultWindow.timesFrom).
 */
const KNOWN_FAILURES: Record<string, string> = {};

describe('chaos, short', { timeout: 1_800_000 }, () => {
  let results: FaultResult[] = [];
  const log: string[] = [];

  before(
    async () => {
      results = await runChaos({
        handsets: 4,
        workers: 1,
        chatEveryMs: 1500,
        mailEveryMs: 3000,
        baselineMs: 3000,
        freezeMs: 5000,
        natsOutageMs: 5000,
        observeMs: 30_000,
        drainMs: 8000,
        only: FAULTS,
        log: (line) => log.push(line),
      });
    },
    { timeout: 1_500_000 },
  );

  for (const name of FAULTS) {
    const known = Object.keys(KNOWN_FAILURES).find((k) => name.startsWith(k));
    test(name, known ? { todo: `known failure: ${KNOWN_FAILURES[known]}` } : {}, (t) => {
      const r = results.find((x) => x.name.startsWith(name));
      assert.ok(r, `no result for ${name}:\n${log.join('\n')}`);
      t.diagnostic(`${r.name}: ${JSON.stringify({ ...r.figures, humanAction: r.humanAction })}`);
      assert.ok(r.figures.items > 0, 'traffic flowed');
      assert.ok(meetsTargets(r), `${r.name} misses the targets: ${JSON.stringify(r)}`);
    });
  }
});
