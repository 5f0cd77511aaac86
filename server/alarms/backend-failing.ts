/**
 * backend_failing: the rate of failed backend requests (backend_error log
 * records) of one device or one preset over a sliding window. Subjects:
 *   device:<imei>:<service>     one device's requests to its mail or chat servers
 *   preset:<service>:<label>    every device's requests to a preset's servers
 *                               (records whose detail names the preset)
 * Raised when failures within windowMs reach the threshold (thresholds from
 * config alarms.backendFailing); cleared when the same device (preset) has a
 * backend request succeed again (a login, a sync, a message in or out) or no
 * failure for a whole window. A device's success clears only the device's
 * alarm when it is about the same account.
 */
import type { DeviceLogRecord } from '../records/types.ts';
import type { AlarmBook } from './alarm-book.ts';

export interface BackendFailingThresholds {
  windowMs: number;
  /** Failed requests of one device (one service) within the window. */
  perDevice: number;
  /** Failed requests of all devices using one preset within the window. */
  perPreset: number;
}

export const DEFAULT_BACKEND_FAILING: BackendFailingThresholds = {
  windowMs: 5 * 60_000,
  perDevice: 3,
  perPreset: 20,
};

const SUCCESS_KINDS: ReadonlySet<string> = new Set(['backend_login', 'sync', 'message_in', 'message_out']);

interface Track {
  failures: number[];
  accounts: Set<string>;
  lastMessage: string;
}

export class BackendFailingWatch {
  private readonly tracks = new Map<string, Track>();

  constructor(
    private readonly book: AlarmBook,
    private readonly thresholds: BackendFailingThresholds = DEFAULT_BACKEND_FAILING,
    private readonly now: () => number = Date.now,
  ) {}

  /** Feeds stored log records in; anything that is not a well-formed backend record is skipped. */
  observe(records: readonly unknown[]): void {
    for (const x of records) {
      const r = x as Partial<DeviceLogRecord> | null;
      if (r === null || typeof r !== 'object') continue;
      if (typeof r.imei !== 'string' || typeof r.service !== 'string' || typeof r.kind !== 'string') continue;
      const detail = r.detail !== null && typeof r.detail === 'object' ? r.detail : {};
      const account = typeof detail.account === 'string' ? detail.account : undefined;
      const preset = typeof detail.preset === 'string' && detail.preset !== '' ? detail.preset : undefined;
      const subjects = [
        `device:${r.imei}:${r.service}`,
        ...(preset ? [`preset:${r.service}:${preset}`] : []),
      ];
      if (r.kind === 'backend_error') {
        const text = `${typeof r.code === 'string' ? r.code : 'error'}${typeof r.message === 'string' ? ` (${r.message.slice(0, 200)})` : ''}`;
        this.failure(subjects[0] ?? '', this.thresholds.perDevice, account, text);
        if (subjects[1]) this.failure(subjects[1], this.thresholds.perPreset, account, text);
      } else if (SUCCESS_KINDS.has(r.kind)) {
        this.success(subjects[0] ?? '', account);
        if (subjects[1]) this.success(subjects[1], undefined);
      }
    }
  }

  /** Clears what has been quiet for a whole window; call it now and then. */
  sweep(): void {
    const now = this.now();
    for (const [subject, t] of this.tracks) {
      t.failures = t.failures.filter((at) => at > now - this.thresholds.windowMs);
      if (t.failures.length > 0) continue;
      this.tracks.delete(subject);
      void this.book.clear('backend_failing', subject, `${subject}: no failed request for a whole window`);
    }
  }

  private failure(subject: string, threshold: number, account: string | undefined, text: string): void {
    const now = this.now();
    const t = this.tracks.get(subject) ?? { failures: [], accounts: new Set<string>(), lastMessage: '' };
    this.tracks.set(subject, t);
    t.failures = t.failures.filter((at) => at > now - this.thresholds.windowMs);
    t.failures.push(now);
    if (account !== undefined) t.accounts.add(account);
    t.lastMessage = text;
    if (t.failures.length < threshold) return;
    const minutes = Math.round(this.thresholds.windowMs / 6000) / 10;
    void this.book.raise({
      kind: 'backend_failing',
      subject,
      severity: 'warning',
      message: `${subject}: ${t.failures.length} failed backend requests in ${minutes} min; last: ${text}`,
    });
  }

  private success(subject: string, account: string | undefined): void {
    const t = this.tracks.get(subject);
    if (!t) {
      // Raised by another admin node, or before this one restarted.
      if (this.book.isActive('backend_failing', subject))
        void this.book.clear('backend_failing', subject, `${subject}: backend requests succeed again`);
      return;
    }
    if (account !== undefined && t.accounts.size > 0 && !t.accounts.has(account)) return;
    this.tracks.delete(subject);
    void this.book.clear('backend_failing', subject, `${subject}: backend requests succeed again`);
  }
}
