/**
 * What the handset fleets report (one record per send attempt, per item seen,
 * per connect and disconnect) and the parent's side of the fleets: it starts
 * the worker processes, hands each its handsets, and keeps every record in
 * one ItemTable that analysis.ts judges.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { eventually } from '../../testing/index.ts';
import { type ProcessSet, waitExit } from './processes.ts';

export interface HandsetSpec {
  index: number;
  imei: string;
  secret: string;
  urls: string[];
  /** 127.0.0.x: each handset its own source address, as devices behind different carriers. */
  localAddress: string;
  mailUser: string;
  jid: string;
  password: string;
  /** The handset this one sends to. */
  peer: number;
  peerMail: string;
  peerJid: string;
}

export interface FleetSetup {
  handsets: HandsetSpec[];
  imap: { host: string; port: number };
  smtp: { host: string; port: number };
  xmpp: { host: string; port: number };
  chatEveryMs: number;
  mailEveryMs: number;
  /**
   * The application: 'sdk' takes items from the SDK's PushCursors (no sync code of its own, as
   * issue 12 asks); 'manual' does what docs/handset-json.md tells an application without it.
   */
  app: 'sdk' | 'manual';
}

export type FleetCommand =
  | { type: 'setup'; setup: FleetSetup }
  | { type: 'traffic'; on: boolean }
  | { type: 'reopen' }
  | { type: 'stop' };

export type Rec =
  | {
      r: 'attempt';
      item: string;
      from: number;
      to: number;
      t: number;
      ok: boolean;
      code?: string;
      attempt: number;
      ms: number;
    }
  | { r: 'seen'; item: string; h: number; t: number; via: 'push' | 'sync' }
  | { r: 'conn'; h: number; t: number; resumed: boolean }
  | { r: 'disc'; h: number; t: number; code: string };

export interface Item {
  id: string;
  kind: 'chat' | 'mail';
  from: number;
  to: number;
  seq: number;
  firstAttempt: number;
  attempts: number;
  /** When an attempt was answered with success. */
  acceptedAt?: number;
  errors: string[];
  /** Every time the receiving application saw it. */
  seen: number[];
}

/** Every item by id, built from the records as they come. */
export class ItemTable {
  readonly items = new Map<string, Item>();
  /** The items each handset sent or receives, in the order they were first heard of. */
  readonly byHandset = new Map<number, Item[]>();
  readonly conns: Array<Extract<Rec, { r: 'conn' | 'disc' }>> = [];

  #item(id: string, from: number, to: number): Item {
    let item = this.items.get(id);
    if (!item) {
      const [, k, , n] = id.split('-');
      item = {
        id,
        kind: k === 'm' ? 'mail' : 'chat',
        from,
        to,
        seq: Number(n),
        firstAttempt: Number.POSITIVE_INFINITY,
        attempts: 0,
        errors: [],
        seen: [],
      };
      this.items.set(id, item);
      for (const h of new Set([from, to])) {
        const list = this.byHandset.get(h) ?? [];
        list.push(item);
        this.byHandset.set(h, list);
      }
    }
    return item;
  }

  add(rec: Rec): void {
    if (rec.r === 'attempt') {
      const item = this.#item(rec.item, rec.from, rec.to);
      item.firstAttempt = Math.min(item.firstAttempt, rec.t);
      item.attempts++;
      if (rec.ok) item.acceptedAt ??= rec.t + rec.ms;
      else item.errors.push(rec.code ?? 'internal');
    } else if (rec.r === 'seen') {
      const parts = rec.item.split('-');
      const item = this.#item(rec.item, Number(parts[2]), rec.h);
      item.seen.push(rec.t);
    } else {
      this.conns.push(rec);
    }
  }
}

const WORKER = fileURLToPath(new URL('./fleet-worker.ts', import.meta.url));

export class Fleet {
  readonly table = new ItemTable();
  readonly #workers: ChildProcess[] = [];
  readonly #waiting = new Map<ChildProcess, Array<(msg: any) => void>>();
  failures: string[] = [];

  private constructor(private readonly processes: ProcessSet) {}

  /** Starts `workers` processes and sets their handsets up (accounts added, cursors taken). */
  static async start(processes: ProcessSet, setup: FleetSetup, workers: number): Promise<Fleet> {
    const fleet = new Fleet(processes);
    const n = Math.max(1, Math.min(workers, setup.handsets.length));
    for (let w = 0; w < n; w++) {
      const child = processes.spawn(`fleet-${w}`, process.execPath, ['--import', 'tsx', WORKER], {
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
        env: { ...process.env },
      });
      fleet.#workers.push(child);
      fleet.#waiting.set(child, []);
      child.on('message', (msg: any) => {
        if (msg.type === 'records') for (const r of msg.records as Rec[]) fleet.table.add(r);
        else if (msg.type === 'failed') fleet.failures.push(msg.error);
        else for (const resolve of fleet.#waiting.get(child)!.splice(0)) resolve(msg);
      });
    }
    await Promise.all(
      fleet.#workers.map((child, w) =>
        fleet.#ask(
          child,
          { type: 'setup', setup: { ...setup, handsets: setup.handsets.filter((_, i) => i % n === w) } },
          'ready',
          300_000,
        ),
      ),
    );
    return fleet;
  }

  async #ask(child: ChildProcess, cmd: FleetCommand, answer: string, timeoutMs: number): Promise<void> {
    let got: any;
    this.#waiting.get(child)!.push((msg) => {
      got = msg;
    });
    child.send(cmd);
    // A failure ends the wait at once (a throw inside the probe would only be retried).
    const outcome = await eventually(
      `fleet ${cmd.type}`,
      () => {
        if (this.failures.length > 0) return { error: `fleet failed: ${this.failures.join('\n')}` };
        if (child.exitCode !== null) return { error: `fleet worker exited with ${child.exitCode}` };
        return got !== undefined && (got.type === answer || got.type === 'done') && { error: undefined };
      },
      { timeoutMs, intervalMs: 50 },
    );
    if (outcome.error !== undefined) throw new Error(outcome.error);
  }

  async #all(cmd: FleetCommand, timeoutMs = 120_000): Promise<void> {
    await Promise.all(this.#workers.map((c) => this.#ask(c, cmd, 'done', timeoutMs)));
  }

  traffic(on: boolean): Promise<void> {
    return this.#all({ type: 'traffic', on });
  }

  /** The human action "restart the app on every handset". */
  reopen(): Promise<void> {
    return this.#all({ type: 'reopen' }, 300_000);
  }

  async stop(): Promise<void> {
    for (const child of this.#workers) {
      if (child.connected) child.send({ type: 'stop' });
    }
    // The worker sends its last records and leaves by itself; SIGTERM only for one that does not.
    await Promise.all(
      this.#workers.map(async (c) => {
        if (!(await waitExit(c, 15_000))) await this.processes.kill(c, 'SIGTERM');
      }),
    );
  }
}
