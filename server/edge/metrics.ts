/**
 * Edge metrics. The hot path only bumps plain numbers on an EdgeStats object;
 * prom-client reads them at scrape time (collect), so a frame costs an
 * addition, not a label lookup. Several edges may share one Registry (tests,
 * or a process composing two): their figures are summed.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

export class EdgeStats {
  framesIn = 0;
  framesOut = 0;
  bytesIn = 0;
  bytesOut = 0;
  resumes = 0;
  /** Hellos accepted: new sessions (the denominator of the auth failure rate). */
  logins = 0;
  /** Long-poll requests passed to the edge holding their session (poll-forward.ts). */
  pollForwards = 0;
  readonly authFailures = new Map<string, number>();
  /** Connections refused or closed before authentication, by reason (pre-auth.ts, the Hello deadline). */
  readonly preAuthRefusals = new Map<string, number>();
  /** Resumes refused, by code: auth.resume_failed (unknown, ended or out of range) or session.busy (registry unreachable). */
  readonly resumeFailures = new Map<string, number>();
  /** Carriers the edge closed, by the code of their last frame. */
  readonly carrierCloses = new Map<string, number>();
  sessions: () => number = () => 0;
  /** Connections without a session yet (opening or authenticating). */
  unauthenticated: () => number = () => 0;
  /** Live frame-compression contexts (SPEC.md §4.4): up to 2 per compressing carrier, 0 once parked. */
  compressionContexts: () => number = () => 0;

  authFailed(code: string): void {
    this.authFailures.set(code, (this.authFailures.get(code) ?? 0) + 1);
  }

  resumeFailed(code: string): void {
    this.resumeFailures.set(code, (this.resumeFailures.get(code) ?? 0) + 1);
  }

  preAuthRefused(reason: string): void {
    this.preAuthRefusals.set(reason, (this.preAuthRefusals.get(reason) ?? 0) + 1);
  }

  carrierClosed(code: string): void {
    this.carrierCloses.set(code, (this.carrierCloses.get(code) ?? 0) + 1);
  }
}

const sources = new WeakMap<Registry, Set<EdgeStats>>();

function sum(set: Set<EdgeStats>, pick: (s: EdgeStats) => number): number {
  let n = 0;
  for (const s of set) n += pick(s);
  return n;
}

function sumByLabel(set: Set<EdgeStats>, pick: (s: EdgeStats) => Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of set) for (const [k, v] of pick(s)) out.set(k, (out.get(k) ?? 0) + v);
  return out;
}

/** Registers the edge metrics on `registry` (once per registry) and adds `stats` to what they report. */
export function registerEdgeMetrics(registry: Registry, stats: EdgeStats): () => void {
  let set = sources.get(registry);
  if (set === undefined) {
    set = new Set();
    sources.set(registry, set);
    const all = set;
    const counter = (name: string, help: string, pick: (s: EdgeStats) => number) =>
      new Counter({
        name,
        help,
        registers: [registry],
        collect() {
          this.reset();
          this.inc(sum(all, pick));
        },
      });
    const labelled = (
      name: string,
      help: string,
      pick: (s: EdgeStats) => Map<string, number>,
      label = 'code',
    ) =>
      new Counter({
        name,
        help,
        labelNames: [label],
        registers: [registry],
        collect() {
          this.reset();
          for (const [value, n] of sumByLabel(all, pick)) this.inc({ [label]: value }, n);
        },
      });
    new Gauge({
      name: 'mmgw_edge_sessions',
      help: 'Device sessions held by this edge (attached or detached within the resume window).',
      registers: [registry],
      collect() {
        this.set(sum(all, (s) => s.sessions()));
      },
    });
    new Gauge({
      name: 'mmgw_edge_unauthenticated',
      help: 'Connections without a session yet (waiting for or checking Hello/Resume).',
      registers: [registry],
      collect() {
        this.set(sum(all, (s) => s.unauthenticated()));
      },
    });
    new Gauge({
      name: 'mmgw_edge_compression_contexts',
      help: 'Live frame-compression contexts (about 13 KiB each way; an idle carrier parks its to 1 KiB).',
      registers: [registry],
      collect() {
        this.set(sum(all, (s) => s.compressionContexts()));
      },
    });
    counter('mmgw_edge_frames_in_total', 'Frames received from devices.', (s) => s.framesIn);
    counter('mmgw_edge_frames_out_total', 'Frames sent to devices (replays included).', (s) => s.framesOut);
    counter('mmgw_edge_bytes_in_total', 'Frame bytes received from devices.', (s) => s.bytesIn);
    counter('mmgw_edge_bytes_out_total', 'Frame bytes sent to devices.', (s) => s.bytesOut);
    counter(
      'mmgw_edge_resumes_total',
      'Sessions resumed (locally or claimed from another edge).',
      (s) => s.resumes,
    );
    counter('mmgw_edge_logins_total', 'Hellos accepted (new sessions).', (s) => s.logins);
    labelled(
      'mmgw_edge_resume_failures_total',
      'Resumes refused, by code (auth.resume_failed; session.busy while the registry is unreachable).',
      (s) => s.resumeFailures,
    );
    counter(
      'mmgw_edge_poll_forwards_total',
      'Long-poll requests that landed here for a session another edge (worker) holds, passed to it.',
      (s) => s.pollForwards,
    );
    labelled('mmgw_edge_auth_failures_total', 'Refused Hello/Resume, by error code.', (s) => s.authFailures);
    labelled(
      'mmgw_edge_preauth_refusals_total',
      'Connections refused before authentication (address_cap, total_cap) or closed at the Hello deadline (hello_deadline).',
      (s) => s.preAuthRefusals,
      'reason',
    );
    labelled(
      'mmgw_edge_carrier_closes_total',
      'Carriers closed by the edge, by the code of the fatal Error or Bye sent.',
      (s) => s.carrierCloses,
    );
  }
  set.add(stats);
  const mine = set;
  return () => {
    mine.delete(stats);
  };
}
