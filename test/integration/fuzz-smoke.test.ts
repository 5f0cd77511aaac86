/**
 * `npm run fuzz` kept working: a short run of the fuzzer (test/fuzz) against
 * a real gateway, with its peers. The gateway stays up, every answer is a
 * result or a handset code of the registry, memory stays in its bound, the
 * control session echoes throughout; and the run reached the methods (results
 * and refusals both), the raw frame fuzzer and the control echo.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runFuzz } from '../fuzz/fuzz.ts';
import { formatReport } from '../fuzz/report.ts';

const sum = (m: ReadonlyMap<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);

test('fuzzing a gateway for a few seconds finds nothing, and fuzzes', { timeout: 300_000 }, async () => {
  const report = await runFuzz({
    seconds: 12,
    devices: 4,
    seed: 20_240_601,
    ratePerDevice: 6,
    rawPerSecond: 3,
  });
  const t = report.tally;
  const summary = formatReport(report);
  const findings = Object.fromEntries(t.findingCounts);
  assert.deepEqual(findings, {}, summary);
  assert.ok(sum(t.sent) > 150, summary);
  assert.ok(t.sent.size >= 20, `requests reached ${t.sent.size} methods\n${summary}`);
  assert.ok((t.answers.get('ok') ?? 0) > 30, summary);
  assert.ok((t.answers.get('request.bad_input') ?? 0) > 10, summary);
  assert.ok(sum(report.rawEpisodes) > 10, summary);
  assert.ok(sum(t.rawCodes) > 0, summary);
  assert.ok(report.control.count > 20 && report.control.failures === 0, summary);
  assert.ok(report.rss.end.bytes > 0 && report.rss.peak.bytes <= report.rss.boundBytes, summary);
});
