import { hostname, userInfo } from 'node:os';
import type { AuditActor } from '../store/audit-outbox.ts';

/**
 * What every `mmgw` command shares: where its output goes (injected, so a
 * unit test captures it) and who it acts as in the audit log.
 */

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** Is stderr a terminal (progress bars only there)? */
  isTty: boolean;
}

/** Who changes things from this shell, for the audit log. */
export function cliActor(): AuditActor {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry (some containers): the uid still says who.
    user = process.env.USER || `uid-${process.getuid?.() ?? 'unknown'}`;
  }
  return { actor: `cli:${user}`, role: 'cli', address: hostname() };
}

export const processIo: CliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  isTty: Boolean(process.stderr.isTTY),
};
