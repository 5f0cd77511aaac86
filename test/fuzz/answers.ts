/**
 * The fuzzer's oracle and its books: what an answer must be (a result, or
 * an Error whose code is in the registry and may be shown to a handset, with
 * no stack in its message), what counts as a finding, and the tallies the
 * summary prints (requests per method, answers per code).
 */
import { ERRORS, GatewayError, isErrorCode } from '../../device-protocol/errors.ts';
import type { Mode } from './requests.ts';

/** How a request ended, as the fuzzer sees it through the SDK. */
export type Outcome =
  | { kind: 'result' }
  /** An Error frame from the gateway (or a fatal one that ended the session). */
  | { kind: 'error'; code: string; message: string }
  /** The SDK's own timeout: no answer at all within the answer timeout. */
  | { kind: 'no-answer' }
  /** The fuzzer closed the handset first (end of the run). */
  | { kind: 'closed' }
  /** The SDK rejected with something that is not a GatewayError. */
  | { kind: 'thrown'; message: string };

/** The message the SDK's request timer uses (device-protocol/session/calls.ts); the gateway's request.timeout reads otherwise. */
const SDK_TIMEOUT = /^no answer to /;
const SDK_CLOSED = /^the handset (was|is) closed/;

export function outcomeOfRejection(err: unknown): Outcome {
  if (!(err instanceof GatewayError)) {
    return { kind: 'thrown', message: err instanceof Error ? (err.stack ?? err.message) : String(err) };
  }
  if (err.code === 'request.timeout' && SDK_TIMEOUT.test(err.message)) return { kind: 'no-answer' };
  if (err.code === 'session.closed' && SDK_CLOSED.test(err.message)) return { kind: 'closed' };
  return { kind: 'error', code: err.code, message: err.message };
}

/** Is `code` one a handset may be shown (in the registry, `handset: true`)? */
export function isHandsetCode(code: string): boolean {
  return isErrorCode(code) && ERRORS[code].handset;
}

/** A stack frame, a source path or a module path in a message meant for a device. */
const LEAK = /\n\s+at\s|\bat\s+\S+\s+\(\S+:\d+:\d+\)|\.(ts|js):\d+|node_modules\/|\/work\/|file:\/\//;

export function leaksInternals(message: string): boolean {
  return LEAK.test(message);
}

export type FindingKind =
  | 'gateway-exit'
  | 'untyped-answer'
  | 'internal-leak'
  | 'no-answer'
  | 'isolation'
  | 'memory'
  | 'control'
  | 'raw'
  | 'fuzzer';

export interface Finding {
  kind: FindingKind;
  /** What was wrong, in one line. */
  detail: string;
  /** Seconds since the fuzzing began. */
  at: number;
  device?: string;
  method?: string;
  mode?: Mode | 'raw';
  mutation?: string;
  /** The body as sent (printable form). */
  body?: string;
  /** Longer evidence: a stack, a log tail. */
  evidence?: string;
}

/** Samples kept per finding kind (all are counted). */
const SAMPLES_PER_KIND = 20;

/** Name for the tables: real methods as they are, anything else grouped. */
function methodKey(method: string, known: ReadonlySet<string>): string {
  return known.has(method) ? method : '(other names)';
}

function bump<K>(map: Map<K, number>, key: K, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}

export class Tally {
  readonly sent = new Map<string, number>();
  readonly byMode = new Map<string, number>();
  /** `ok` or the error code, over every answer. */
  readonly answers = new Map<string, number>();
  readonly perMethod = new Map<string, Map<string, number>>();
  /** Bodies the schema accepted, per method (how deep the valid-looking ones reach). */
  readonly schemaValid = new Map<string, number>();
  /** Requests the SDK refused to send (over the frame limit or the codec's limits), by code. */
  readonly refusedLocally = new Map<string, number>();
  /** Error and Bye codes the raw episodes got back. */
  readonly rawCodes = new Map<string, number>();
  /** Session ends the handsets were told of (Bye / fatal Error codes). */
  readonly disconnects = new Map<string, number>();
  readonly findingCounts = new Map<FindingKind, number>();
  readonly findings: Finding[] = [];
  /** Answers with code `internal`: typed, but a handler failed on input its schema let through. */
  readonly internals: Omit<Finding, 'kind'>[] = [];
  internalCount = 0;

  constructor(
    readonly knownMethods: ReadonlySet<string>,
    readonly startedAt: () => number,
  ) {}

  elapsed(): number {
    return Math.round((Date.now() - this.startedAt()) / 100) / 10;
  }

  recordSent(method: string, mode: Mode, schemaValid: boolean): void {
    const key = methodKey(method, this.knownMethods);
    bump(this.sent, key);
    bump(this.byMode, mode);
    if (schemaValid) bump(this.schemaValid, key);
  }

  recordRefusedLocally(code: string): void {
    bump(this.refusedLocally, code);
  }

  recordRawCode(code: string): void {
    bump(this.rawCodes, code);
  }

  recordDisconnect(code: string | undefined, carrier: string): void {
    bump(this.disconnects, `${code ?? '(carrier lost)'} (${carrier})`);
    if (code !== undefined && !isHandsetCode(code) && code !== 'session.closed') {
      this.find({ kind: 'untyped-answer', detail: `a session ended with code ${JSON.stringify(code)}` });
    }
  }

  /** Books one answer and returns the finding it makes, if any. */
  recordOutcome(
    method: string,
    outcome: Outcome,
    context: Omit<Finding, 'kind' | 'detail' | 'at' | 'method'>,
  ): Finding | undefined {
    const key = methodKey(method, this.knownMethods);
    const per = this.perMethod.get(key) ?? new Map<string, number>();
    this.perMethod.set(key, per);
    const label =
      outcome.kind === 'result' ? 'ok' : outcome.kind === 'error' ? outcome.code : `(${outcome.kind})`;
    bump(per, label);
    bump(this.answers, label);
    const base = { method, ...context };
    switch (outcome.kind) {
      case 'result':
      case 'closed':
        return undefined;
      case 'no-answer':
        return this.find({
          ...base,
          kind: 'no-answer',
          detail: `no answer to ${method} within the answer timeout`,
        });
      case 'thrown':
        return this.find({
          ...base,
          kind: 'fuzzer',
          detail: 'the SDK rejected with a non-GatewayError',
          evidence: outcome.message,
        });
      case 'error': {
        if (!isHandsetCode(outcome.code)) {
          return this.find({
            ...base,
            kind: 'untyped-answer',
            detail: `answered with code ${JSON.stringify(outcome.code)}, not a handset code of the registry`,
            evidence: outcome.message,
          });
        }
        if (leaksInternals(outcome.message)) {
          return this.find({
            ...base,
            kind: 'internal-leak',
            detail: `the message of ${outcome.code} shows internals`,
            evidence: outcome.message,
          });
        }
        if (outcome.code === 'internal') {
          this.internalCount++;
          if (this.internals.length < SAMPLES_PER_KIND) {
            this.internals.push({ ...base, detail: outcome.message, at: this.elapsed() });
          }
        }
        return undefined;
      }
    }
  }

  find(f: Omit<Finding, 'at'>): Finding {
    const finding: Finding = { ...f, at: this.elapsed() };
    const n = (this.findingCounts.get(f.kind) ?? 0) + 1;
    this.findingCounts.set(f.kind, n);
    if (n <= SAMPLES_PER_KIND) this.findings.push(finding);
    return finding;
  }

  findingTotal(): number {
    let n = 0;
    for (const v of this.findingCounts.values()) n += v;
    return n;
  }
}
