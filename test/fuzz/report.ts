/** The fuzzing summary as text: what was sent, what came back, memory, the control echo, findings. */
import type { Finding } from './answers.ts';
import type { FuzzReport } from './fuzz.ts';

const MiB = 1024 * 1024;

function sortedEntries(map: ReadonlyMap<string, number>): [string, number][] {
  return [...map.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

function total(map: ReadonlyMap<string, number>): number {
  let n = 0;
  for (const v of map.values()) n += v;
  return n;
}

function inline(map: ReadonlyMap<string, number>, max = 8): string {
  const entries = sortedEntries(map);
  const shown = entries.slice(0, max).map(([k, v]) => `${k} ${v}`);
  if (entries.length > max) shown.push(`… ${entries.length - max} more`);
  return shown.join(', ') || '—';
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(0)} MiB`;
}

export function formatFinding(f: Pick<Finding, 'detail' | 'at'> & Partial<Finding>): string {
  const lines = [`[${f.kind ?? 'note'} at ${f.at} s] ${f.detail}`];
  const where = [
    f.method && `method ${JSON.stringify(f.method).slice(0, 80)}`,
    f.mode && `mode ${f.mode}`,
    f.mutation && `mutation ${f.mutation}`,
    f.device && `device ${f.device}`,
  ]
    .filter(Boolean)
    .join(', ');
  if (where) lines.push(`    ${where}`);
  if (f.body) lines.push(`    body ${f.body}`);
  if (f.evidence)
    lines.push(
      ...f.evidence
        .split('\n')
        .slice(0, 30)
        .map((l) => `    | ${l.slice(0, 300)}`),
    );
  return lines.join('\n');
}

export function formatReport(r: FuzzReport): string {
  const t = r.tally;
  const o = r.options;
  const out: string[] = [];
  out.push(`# mmgw fuzz: seed ${o.seed}, ${o.devices} handsets, ${o.seconds} s`);
  out.push('');
  out.push(
    `fuzzed ${r.fuzzSeconds.toFixed(1)} s, drained ${r.drainSeconds.toFixed(1)} s; ${total(t.sent)} requests sent ` +
      `(${inline(t.byMode)}), ${total(t.answers)} answered; SDK refused before sending: ${inline(t.refusedLocally)}`,
  );
  out.push('');
  out.push('| method | sent | schema-valid | answers |');
  out.push('| --- | ---: | ---: | --- |');
  for (const [method, sent] of sortedEntries(t.sent)) {
    out.push(
      `| ${method} | ${sent} | ${t.schemaValid.get(method) ?? 0} | ${inline(t.perMethod.get(method) ?? new Map(), 5)} |`,
    );
  }
  out.push('');
  out.push(`answers per code: ${inline(t.answers, 40)}`);
  out.push(`raw episodes: ${total(r.rawEpisodes)} (${inline(r.rawEpisodes, 20)})`);
  out.push(`raw answers (Error/Bye codes): ${inline(t.rawCodes, 20)}`);
  out.push(
    `session ends seen by the handsets: ${inline(t.disconnects, 12)}; handsets started again: ${r.handsetRestarts}`,
  );
  out.push(`events pushed to the handsets: ${inline(r.events, 10)}`);
  out.push('');
  const series = r.rss.series.filter((_, i) => i % 10 === 0).map((s) => `${s.at}s ${mib(s.bytes)}`);
  out.push(
    `gateway RSS (process tree): start ${mib(r.rss.start.bytes)}, peak ${mib(r.rss.peak.bytes)} at ${r.rss.peak.at} s, ` +
      `end ${mib(r.rss.end.bytes)} (bound ${mib(r.rss.boundBytes)}; ${r.rss.end.processes} processes)`,
  );
  out.push(`  over time: ${series.join(', ')}`);
  out.push(
    `control echo: ${r.control.count} round trips, p50 ${r.control.p50} ms, p99 ${r.control.p99} ms, ` +
      `max ${r.control.max} ms, ${r.control.failures} failed`,
  );
  out.push(`gateway log records at error/fatal: ${r.gatewayErrors.count}`);
  for (const line of r.gatewayErrors.samples) out.push(`  ${line}`);
  if (r.gatewayExit !== undefined) out.push(`GATEWAY EXITED: ${r.gatewayExit}`);
  out.push('');
  if (t.internalCount > 0) {
    out.push(`answers with code internal (typed, but a handler failed): ${t.internalCount}`);
    for (const n of t.internals.slice(0, 5)) out.push(formatFinding(n));
    out.push('');
  }
  const findings = t.findingTotal();
  out.push(findings === 0 ? 'findings: none' : `FINDINGS: ${findings} (${inline(t.findingCounts)})`);
  for (const f of t.findings) out.push(formatFinding(f));
  return out.join('\n');
}
