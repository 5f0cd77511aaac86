/** Renders the benchmark's figures as test/bench/RESULTS.md. */
import type { BenchOptions, EngineResult, MachineInfo } from './run.ts';

export interface ReportInput {
  machine: MachineInfo;
  options: BenchOptions;
  results: EngineResult[];
  provisionMs: number;
  devices: number;
  /** Engines whose run failed, and why. */
  failures: string[];
}

const kib = (b: number) => (b / 1024).toFixed(2);
const mib = (b: number) => (b / 2 ** 20).toFixed(0);
const int = (n: number) => Math.round(n).toLocaleString('en-US');

function ratio(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || b === 0) return '—';
  return (a / b).toFixed(2);
}

function errors(e: Record<string, number>): string {
  const list = Object.entries(e);
  return list.length === 0 ? 'none' : list.map(([k, v]) => `${k} ×${v}`).join(', ');
}

/**
 * RSS added per session from the first ramp step to the last: immune to the
 * start-up garbage a fresh worker holds until its first collections.
 */
function marginalRss(x: EngineResult): number {
  const first = x.steps[0];
  const last = x.steps.at(-1);
  if (first === undefined || last === undefined || last.sessions <= first.sessions) return 0;
  return (last.edgeRssBytes - first.edgeRssBytes) / (last.sessions - first.sessions);
}

export function renderResults(r: ReportInput): string {
  const { machine: m, options: o, results } = r;
  const uws = results.find((x) => x.engine === 'uws');
  const portable = results.find((x) => x.engine === 'portable');
  const cols = results.map((x) => x.engine);
  const both = uws !== undefined && portable !== undefined;
  const out: string[] = [];
  out.push('## Edge', '');
  out.push(
    'Measured by `npm run bench:edge` (test/bench/edge/run.ts); how to run it: test/bench/README.md.',
    'Server and load generator share the machine below; every figure is from that one run.',
    '',
  );
  out.push('### Machine and run', '');
  out.push(`- date: ${m.date}`);
  out.push(`- command: \`${m.command}\``);
  out.push(`- nproc: ${m.nproc} (${m.cpuModel}); memory: ${m.memTotal}; kernel ${m.kernel}; node ${m.node}`);
  out.push(
    `- open files per process (soft hard): ${m.openFilesPerProcess}; ephemeral ports ${m.ephemeralPorts}`,
  );
  out.push(
    `- 1-minute load average at start ${m.loadAvgStart.toFixed(1)}, at end ${m.loadAvgEnd.toFixed(1)} ` +
      '(the machine is shared with other work; above 2 the benchmark did not have both cores to itself)',
  );
  out.push(
    `- sessions asked: ${int(o.sessions)}; edge processes: ${o.edgeWorkers}; load-generator processes: ${o.clients} ` +
      `(one 127.x.y.z source address each); handshakes in flight at once: ${o.concurrency}; ` +
      `heartbeatMs ${o.heartbeatMs}`,
  );
  out.push(
    `- ${int(r.devices)} devices provisioned through Registry.importDevices in ${int(r.provisionMs)} ms`,
    '',
  );

  const row = (
    label: string,
    f: (x: EngineResult) => number,
    fmt: (n: number) => string = int,
    withRatio = true,
  ) => {
    const vals = results.map(f);
    const cells = vals.map(fmt);
    const rt = withRatio && both ? ratio(f(uws!), f(portable!)) : '—';
    out.push(`| ${label} | ${cells.join(' | ')} | ${rt} |`);
  };
  for (const f of r.failures) out.push(`**${f}**`, '');
  out.push('### Figures', '');
  out.push(`| figure | ${cols.join(' | ')} | ratio uws/portable |`);
  out.push(`| --- | ${cols.map(() => '---:').join(' | ')} | ---: |`);
  row('idle authenticated sessions held', (x) => x.held);
  row('edge RSS at that point, MiB (sum over edge processes)', (x) => x.steps.at(-1)?.edgeRssBytes ?? 0, mib);
  row(
    'edge RSS / session, KiB (total RSS ÷ sessions)',
    (x) => x.steps.at(-1)?.edgeRssPerSessionBytes ?? 0,
    kib,
  );
  row(
    'edge RSS added per session, KiB ((RSS − idle RSS) ÷ sessions)',
    (x) => x.steps.at(-1)?.edgeRssDeltaPerSessionBytes ?? 0,
    kib,
  );
  row('edge RSS per session added between first and last ramp step, KiB', marginalRss, kib);
  row('connect + authenticate, sessions/s (whole ramp)', (x) => x.connectRatePerSec);
  row('connect + authenticate, best ramp step, sessions/s', (x) => x.peakStepRatePerSec);
  for (const [i, burst] of o.eventBursts.entries()) {
    const b = burst === 1 ? 'one per device in turn' : `bursts of ${burst} per device`;
    row(`events pushed and acked, events/s (${b})`, (x) => x.events[i]?.ackedPerSec ?? 0);
    row(`events acked (${b}; pushed: same unless noted below)`, (x) => x.events[i]?.acked ?? 0, int, false);
  }
  row('storm: sessions dropped at once (RST)', (x) => x.storm.dropped, int, false);
  row('storm: resumed', (x) => x.storm.resumed, int, false);
  row(
    'storm: lost (not resumed + devices missing events)',
    (x) => x.storm.failed + x.storm.freshWelcome + x.storm.devicesShort,
    int,
    false,
  );
  row('storm: resume rate, sessions/s', (x) => x.storm.resumeRatePerSec);
  out.push('');

  for (const x of results) {
    out.push(`### ${x.engine}: ramp`, '');
    out.push(
      `${x.edgeWorkers} edge processes; idle edge RSS before the first session: ${mib(x.baselineEdgeRssBytes)} MiB. ` +
        `Ramp stopped: ${x.stoppedBecause}.`,
      '',
    );
    out.push(
      '| target | open | failed | wall ms | sessions/s | p50 ms | p99 ms | edge RSS MiB | KiB/session | Δ KiB/session | primary RSS MiB | load-gen RSS MiB | max fds/edge | kernel TCP MiB | CPU s edges/primary/load |',
    );
    out.push(
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const s of x.steps) {
      out.push(
        `| ${int(s.target)} | ${int(s.sessions)} | ${int(s.failed)} | ${int(s.wallMs)} | ${int(s.ratePerSec)} | ${s.p50Ms} | ${s.p99Ms} | ` +
          `${mib(s.edgeRssBytes)} | ${kib(s.edgeRssPerSessionBytes)} | ${kib(s.edgeRssDeltaPerSessionBytes)} | ${mib(s.primaryRssBytes)} | ` +
          `${mib(s.loadRssBytes)} | ${int(s.edgeFdsMax)} | ${mib(s.tcpKernelBytes)} | ` +
          `${s.cpu.edges.toFixed(1)}/${s.cpu.primary.toFixed(1)}/${s.cpu.load.toFixed(1)} |`,
      );
    }
    const failedSteps = x.steps.filter((s) => s.failed > 0);
    if (failedSteps.length > 0)
      out.push('', `Connect failures: ${failedSteps.map((s) => errors(s.errors)).join('; ')}.`);
    out.push('', `### ${x.engine}: events and storm`, '');
    for (const e of x.events) {
      out.push(
        `- events, bursts of ${e.burst}: ${int(e.pushed)} pushed to ${int(e.devices)} devices (one Event frame ≈ ${e.eventBytes} bytes), ` +
          `${int(e.acked)} acked in ${e.seconds.toFixed(1)} s (timed window + drain) = **${int(e.ackedPerSec)}/s**; ` +
          `gaps ${e.gaps}, duplicates ${e.duplicates}. CPU seconds in that time: edges ${e.serverCpuSeconds.toFixed(1)}, ` +
          `primary (bus broker + injector, the bench process) ${e.primaryCpuSeconds.toFixed(1)}, load generator ${e.loadCpuSeconds.toFixed(1)}.`,
      );
    }
    const s = x.storm;
    out.push(
      `- storm: ${int(s.dropped)} sockets reset at once; ${int(s.eventsWhileDown)} events pushed to every device while they were down; ` +
        `${int(s.resumed)} resumed, ${int(s.freshWelcome)} got a fresh session, ${int(s.failed)} failed (${errors(s.errors)}), ` +
        `retryable refusals answered by a later resume: ${errors(s.retried)}; ` +
        `${int(s.notStarted)} not attempted before the time bound, ` +
        `in ${int(s.wallMs)} ms = ${int(s.resumeRatePerSec)}/s (p99 ${s.p99Ms} ms). ` +
        `${int(s.devicesChecked)} devices checked for every event sent to them since the start: ${int(s.devicesShort)} short, ` +
        `${int(s.eventsLost)} events lost; gaps ${s.gaps}, duplicates ${s.duplicates}.`,
    );
    out.push(`- closed by the server during the run: ${errors(x.closedByServer)}`);
    const sm = Object.entries(x.serverMetrics).filter(([k]) => !k.startsWith('mmgw_edge_bytes'));
    if (sm.length > 0)
      out.push(`- the node's own counters at the end: ${sm.map(([k, v]) => `${k} ${int(v)}`).join(', ')}`);
    for (const n of x.notes) out.push(`- ${n}`);
    out.push('');
  }
  return out.join('\n');
}
