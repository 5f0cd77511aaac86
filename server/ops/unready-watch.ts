/**
 * Says in the log, at warn, when a node stays unready: /readyz answers 503
 * with its reasons, but an operator who finds a node that never came back
 * reads its log first, and a log kept at warn would otherwise show nothing.
 * The first warning comes after `afterMs` of being unready without a break,
 * then one every `everyMs` while it lasts, and an info line once it is ready
 * again. A draining node is unready on purpose: not warned about.
 */
import type { Logger } from 'pino';
import type { Readiness } from './http.ts';

export interface UnreadyWatchOptions {
  afterMs?: number;
  everyMs?: number;
  /** How often readiness is looked at (default 5 s). */
  checkMs?: number;
}

export interface UnreadyWatch {
  /** Looks once at `now` (the timer calls it; a test may too). */
  check(now: number): void;
  stop(): void;
}

export function watchUnready(
  readiness: () => Readiness,
  logger: Pick<Logger, 'warn' | 'info'>,
  options: UnreadyWatchOptions = {},
): UnreadyWatch {
  const afterMs = options.afterMs ?? 20_000;
  const everyMs = options.everyMs ?? 30_000;
  let since: number | undefined;
  let warnedAt: number | undefined;
  const check = (now: number) => {
    const r = readiness();
    if (r.ready || r.reasons.includes('node is draining')) {
      if (warnedAt !== undefined && r.ready) {
        logger.info({ unreadyForMs: now - (since ?? now) }, 'node is ready again');
      }
      since = undefined;
      warnedAt = undefined;
      return;
    }
    since ??= now;
    const due = warnedAt === undefined ? since + afterMs : warnedAt + everyMs;
    if (now < due) return;
    warnedAt = now;
    logger.warn({ unreadyForMs: now - since, reasons: r.reasons }, 'node is still not ready');
  };
  const timer = setInterval(() => check(Date.now()), options.checkMs ?? 5_000);
  timer.unref();
  return { check, stop: () => clearInterval(timer) };
}
