/**
 * The chaos run's Markdown: machine, date, command, one table row per fault,
 * the faults that miss the targets of issue 12, and an availability budget
 * (downtime per fault × a stated rate per year against 5.26 minutes a year).
 * `--write` puts it into test/bench/RESULTS.md under "## Availability".
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { DELIVERY_MS } from './analysis.ts';
import type { FaultResult } from './chaos.ts';

/** Five nines: 0.001 % of a year, in minutes. */
export const BUDGET_MINUTES = 5.26;
/** How long a human takes to notice and act, for faults that needed one. */
export const HUMAN_RESPONSE_MINUTES = 30;

/** Faults per year assumed for the budget (per fault of the table, processes of that kind counted). */
export function ratePerYear(name: string): { rate: number; why: string } {
  const count = /transcoder/.test(name) ? 1 : 2;
  if (name.startsWith('kill -9 one NATS')) return { rate: 12, why: '4 crashes a year × 3 servers' };
  if (name.startsWith('all NATS')) return { rate: 0.5, why: 'one total bus outage every 2 years' };
  if (name.startsWith('rolling')) return { rate: 12, why: 'a monthly upgrade' };
  if (name.startsWith('single-node')) return { rate: 12, why: 'a monthly upgrade of a single node' };
  if (name.startsWith('kill -9')) return { rate: 4 * count, why: `4 crashes a year × ${count} nodes` };
  if (name.startsWith('SIGTERM'))
    return { rate: 4 * count, why: `4 restarts a year × ${count} nodes (host maintenance)` };
  if (name.startsWith('SIGSTOP'))
    return { rate: 2 * count, why: `2 freezes a year × ${count} nodes (VM pause, disk hang)` };
  return { rate: 1, why: 'assumed once a year' };
}

/** Device-weighted downtime of one occurrence, in minutes (a human's response added when one was needed). */
export function downtimeMinutes(r: FaultResult): number {
  const f = r.figures;
  let minutes = f.meanDowntimeMs / 60_000;
  if (r.humanAction !== 'none' && f.handsets > 0)
    minutes += HUMAN_RESPONSE_MINUTES * (f.affected / f.handsets);
  return minutes;
}

/**
 * The membership TTL of the nodes (server/node.ts HEARTBEAT_TTL_MS): the issue's target for a
 * transport killed with kill -9 is 5 s after it, the time the others need to learn of the crash.
 */
export const MEMBERSHIP_TTL_MS = 3500;

/** The p99 target of a fault: 5 s, and for kill -9 of a transport 5 s after the membership TTL. */
export function targetMs(name: string): number {
  return /^kill -9 transport/.test(name) ? DELIVERY_MS + MEMBERSHIP_TTL_MS : DELIVERY_MS;
}

export function meetsTargets(r: FaultResult): boolean {
  const f = r.figures;
  return (
    r.humanAction === 'none' &&
    r.note === undefined &&
    f.unrecovered === 0 &&
    f.lost === 0 &&
    f.doubled === 0 &&
    f.outOfOrder === 0 &&
    (f.p99Ms ?? 0) <= targetMs(r.name)
  );
}

const s = (ms: number | undefined) => (ms === undefined ? '–' : (ms / 1000).toFixed(1));

export function renderReport(
  results: FaultResult[],
  run: { command: string; startedAt: Date; minutes: number; app?: 'sdk' | 'manual' },
): string {
  const application =
    run.app === 'manual'
      ? "does what docs/handset-json.md asks of an application without the SDK's cursor keeper (syncs INBOX and catches chat up from its cursors after `resumed: false` or `im.state` online)"
      : "takes every item from the SDK's `PushCursors` (no sync code of its own)";
  const lines: string[] = [];
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  lines.push(
    `### Chaos run (generated, ${run.startedAt.toISOString().slice(0, 16).replace('T', ' ')} UTC)`,
    '',
    `- Machine: ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}, ${process.platform}`,
    `- Command: \`${run.command}\` (${run.minutes.toFixed(0)} minutes)`,
    '- Deployment: 3 nats-servers (JetStream, clustered), 2 admin, 2 transport, 2 edge, 1 transcoder ' +
      '(`mmgw start --role X`, one process each), real Dovecot and Prosody, all on loopback; the last row is a single-node `mmgw start`.',
    `- Recovery: a handset works again at its first item after its last failed one (an item works when its first send is accepted and the other application sees it within ${DELIVERY_MS / 1000} s). Times are from the fault (all NATS servers down, which nothing can work through: from the moment every server is back; the rolling restart, one node after another: from the restart of the node during which the handset's last failed item began), over the affected handsets; "–" none.`,
    `- Application: ${application} and drops nothing: an item handed over twice counts as doubled. "not back": affected handsets whose last item of the observation failed. Half the handsets start at each edge; the SDK gets every edge URL and moves to another when its edge fails.`,
    '',
    '| fault | affected | p50 s | p99 s | max s | not back | items | lost | doubled | out of order | not accepted | human action |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  );
  for (const r of results) {
    const f = r.figures;
    lines.push(
      `| ${r.name} | ${f.affected}/${f.handsets} | ${s(f.p50Ms)} | ${s(f.p99Ms)} | ${s(f.maxMs)} | ${f.unrecovered} | ${f.items} | ${f.lost} | ${f.doubled} | ${f.outOfOrder} | ${f.notAccepted} | ${r.humanAction}${r.note ? ` (${r.note})` : ''} |`,
    );
  }
  const failing = results.filter((r) => !meetsTargets(r));
  lines.push(
    '',
    `Against the targets of issue 12 (≤ ${DELIVERY_MS / 1000} s p99, for kill -9 of a transport ≤ ${DELIVERY_MS / 1000} s after the ${MEMBERSHIP_TTL_MS / 1000} s membership TTL; 0 lost, 0 doubled, no human action): ` +
      `${results.length - failing.length} of ${results.length} faults meet them.`,
  );
  if (failing.length > 0) lines.push(`Known failures: ${failing.map((r) => r.name).join('; ')}.`);
  lines.push(
    '',
    '#### Availability budget',
    '',
    `Downtime of one fault = the mean over all handsets of the time each did not work (an affected handset not back by the end of the observation counts until then), plus ${HUMAN_RESPONSE_MINUTES} minutes × the affected share when a human had to act. Rates are assumptions, stated per row.`,
    '',
    '| fault | downtime per fault (min) | rate per year | why | minutes per year |',
    '| --- | ---: | ---: | --- | ---: |',
  );
  let cluster = 0;
  let single = 0;
  for (const r of results) {
    const { rate, why } = ratePerYear(r.name);
    const d = downtimeMinutes(r);
    if (r.name.startsWith('single-node')) single += d * rate;
    else cluster += d * rate;
    lines.push(`| ${r.name} | ${d.toFixed(3)} | ${rate} | ${why} | ${(d * rate).toFixed(2)} |`);
  }
  lines.push(
    '',
    `Cluster: **${cluster.toFixed(2)} minutes a year** against a budget of ${BUDGET_MINUTES} (${cluster <= BUDGET_MINUTES ? 'within' : 'over'}).` +
      (results.some((r) => r.name.startsWith('single-node'))
        ? ` Single node (upgrades only): **${single.toFixed(2)} minutes a year**.`
        : ''),
    '',
  );
  return lines.join('\n');
}

/** Puts `report` at the top of the "## Availability" section of RESULTS.md (the section is made when missing). */
export function writeIntoResults(path: string, report: string): void {
  const text = readFileSync(path, 'utf8');
  const heading = '## Availability';
  const at = text.indexOf(`\n${heading}\n`);
  if (at < 0) {
    writeFileSync(path, `${text.trimEnd()}\n\n${heading}\n\n${report}`);
    return;
  }
  const insertAt = at + heading.length + 2;
  writeFileSync(path, `${text.slice(0, insertAt)}\n${report.trimEnd()}\n${text.slice(insertAt)}`);
}
