/** IPC messages between the benchmark driver (run.ts) and its load-generator processes (load-client.ts). */
import type { RawWsTarget } from './raw-ws.ts';

export type ClientCommand =
  | {
      id: number;
      cmd: 'init';
      target: RawWsTarget;
      /** [imei, secret] per device this process plays. */
      devices: [string, string][];
      /** Handshakes in flight at once. */
      concurrency: number;
      ackEvery: number;
      /** Longest wait before acking what was received (SPEC.md §5: at most 1 s). */
      ackDelayMs: number;
      connectTimeoutMs: number;
    }
  /** Open sessions [from, to) of this process's devices with Hello. */
  | { id: number; cmd: 'connect'; from: number; to: number }
  /** Reconnect every session that has no carrier with Resume {lastSeq}. */
  | { id: number; cmd: 'resume' }
  /** RST up to `max` open sockets at once (a reconnect storm starts with this). */
  | { id: number; cmd: 'drop'; max: number }
  /** Start no more handshakes in the phase in progress; it ends when those in flight settle. */
  | { id: number; cmd: 'abort' }
  | { id: number; cmd: 'flush-acks' }
  | { id: number; cmd: 'stats' }
  | { id: number; cmd: 'device-states' }
  | { id: number; cmd: 'close' };

export interface PhaseResult {
  ok: number;
  resumed: number;
  failed: number;
  /** Never started: the phase was aborted at its time bound. */
  notStarted: number;
  errors: Record<string, number>;
  /** Retryable refusals the handsets came back after, by code (not failures unless errors says so). */
  retried: Record<string, number>;
  ms: number;
  p50Ms: number;
  p99Ms: number;
}

export interface ClientStats {
  open: number;
  eventsReceived: number;
  eventsAcked: number;
  gaps: number;
  duplicates: number;
  pingsSent: number;
  pongs: number;
  closedByServer: Record<string, number>;
  rssBytes: number;
}

export type ClientReply =
  | { id: number; ok: true }
  | { id: number; phase: PhaseResult }
  | { id: number; dropped: number }
  | { id: number; stats: ClientStats }
  | { id: number; seqs: number[]; open: number[] };
