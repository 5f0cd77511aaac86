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
 * Faults that miss the targets today, from this file's runs and the full runs
 * of 2026-12-07 04:43 and 05:20 UTC (test/bench/RESULTS.md "Availability", 40 handsets).
 */
const KNOWN_FAILURES: Record<string, string> = {
  'SIGTERM edge-1':
    'passed in two short and one full run; one item doubled in the second full run (05:20 UTC)',
  'kill -9 edge-1':
    'every device resumed: false; p99 4.6 to 5.8 s here (4 handsets), 18.9 s and 5 doubled with 40 handsets',
  'SIGSTOP transport-1':
    'passes with this 5 s freeze; the full run (30 s) has 39/40 handsets out for p99 36.7 s and 19 doubled',
  'kill -9 one NATS server': '2 of 40 handsets out for up to 1.9 s and one item doubled in the full run',
  'all NATS servers down':
    '5 s outage: 3 of 26 mails lost (never pushed), p99 12.3 s; 20 s: 7 lost, 9 of 40 not back',
  'single-node mmgw start':
    'every device resumed: false, p99 13.3 s and one mail seen twice here; with 40 handsets no handset works again',
};

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
