/**
 * Takeover (issue #12): when a transport leaves the nodes the router picks
 * among (its heartbeats stopped for the membership TTL after a crash, or it
 * drains), every other transport works out which of the cluster's devices
 * were that node's and now hash to itself, and brings their mail and chat
 * accounts up by itself: INBOX watchers from their marks, XMPP sessions with
 * an archive catch-up from the last pushed message (the marks, cursors and
 * accounts are in the cluster's shared state). It then reports the takeover
 * (server/alarms: takeover_done) with the devices, the accounts and the time
 * from the leave to the last account up.
 *
 * When a node joins (the dead one returns), the devices the router now gives
 * it move back: this node releases those it served (watchers stop after
 * their last marks, XMPP sessions after the pushes under way) and the
 * returning node, which waits for that release (kit/device-holds.ts), goes on
 * from the marks and cursors. Moving back rather than staying keeps one rule
 * for where a device's sessions run, the router's, which every edge follows
 * for requests.
 *
 * The clock and the work are injected; this file decides only who moves.
 */
import type { Logger } from 'pino';
import { rendezvousPick } from '../router/index.ts';

export interface TakeoverReport {
  fromNode: string;
  byNode: string;
  devices: number;
  accounts: number;
  tookMs: number;
}

export interface DeviceMovesOptions {
  nodeId: string;
  /** The transport nodes the router picks among now (RendezvousRouter.nodeIds). */
  nodeIds(): string[];
  /** Called after each membership change (after the router saw it). Returns the unsubscribe. */
  onChange(listener: () => void): () => void;
  /** Every device with a stored account in the cluster. */
  devices(): Iterable<string>;
  /** Brings the device's accounts up here; resolves with how many it has. */
  takeOver(deviceId: string): Promise<number>;
  /** Stops the device's sessions here, after their last marks. */
  release(deviceId: string): Promise<void>;
  report(report: TakeoverReport): void;
  now?: () => number;
  logger?: Pick<Logger, 'info' | 'warn'>;
  /** Devices brought up or released at once. Default 16. */
  concurrency?: number;
}

export interface DeviceMoves {
  /** Resolves when the moves started so far are done (tests). */
  settled(): Promise<void>;
  close(): void;
}

export function watchDeviceMoves(opts: DeviceMovesOptions): DeviceMoves {
  const now = opts.now ?? Date.now;
  const self = opts.nodeId;
  let before = opts.nodeIds();
  let work: Promise<void> = Promise.resolve();
  // Devices this node let go on a membership change: when the router gives them
  // back while their other node still lives (this node had dropped out of its own
  // view, or another node came and went), nobody else brings them up here.
  const releasedHere = new Set<string>();
  const off = opts.onChange(() => {
    const after = opts.nodeIds();
    const previous = before;
    before = after;
    const gone = previous.filter((n) => !after.includes(n));
    const joined = after.some((n) => !previous.includes(n));
    if (gone.length === 0 && !joined) return;
    const changedAt = now();
    const taken = new Map<string, string[]>();
    const released: string[] = [];
    const reclaimed: string[] = [];
    for (const deviceId of opts.devices()) {
      const was = rendezvousPick(deviceId, previous);
      const is = rendezvousPick(deviceId, after);
      if (was === is) continue;
      if (is === self && was !== undefined && gone.includes(was)) {
        releasedHere.delete(deviceId);
        const list = taken.get(was) ?? [];
        if (list.length === 0) taken.set(was, list);
        list.push(deviceId);
      } else if (is === self && releasedHere.delete(deviceId)) reclaimed.push(deviceId);
      else if (was === self) {
        releasedHere.add(deviceId);
        released.push(deviceId);
      }
    }
    if (taken.size === 0 && released.length === 0 && reclaimed.length === 0) return;
    // One move at a time: a node that leaves and returns quickly is handled in order.
    work = work.then(() => move(changedAt, taken, released, reclaimed));
  });

  async function move(
    changedAt: number,
    taken: Map<string, string[]>,
    released: string[],
    reclaimed: string[],
  ): Promise<void> {
    await each(released, opts.release, 'device release failed', 'devices moved to another transport');
    // Back to this node, from one that did not leave: a move back, not a takeover (no report).
    await each(reclaimed, opts.takeOver, 'device take-back failed', 'devices moved back to this transport');
    for (const [fromNode, devices] of taken) {
      let accounts = 0;
      await inBatches(devices, async (deviceId) => {
        // Not `accounts += await …`: that reads `accounts` before the wait, and the batches run at once.
        const up = await opts.takeOver(deviceId).catch((err) => {
          opts.logger?.warn({ err, deviceId }, 'device takeover failed');
          return 0;
        });
        accounts += up;
      });
      const report = { fromNode, byNode: self, devices: devices.length, accounts, tookMs: now() - changedAt };
      opts.logger?.info(report, 'took over the devices of a transport that left');
      opts.report(report);
    }
  }

  /** Runs `step` on every device, a failure logged and not stopping the others; logs how many. */
  async function each(
    ids: string[],
    step: (deviceId: string) => Promise<unknown>,
    failed: string,
    done: string,
  ): Promise<void> {
    await inBatches(ids, async (deviceId) => {
      await step(deviceId).catch((err) => opts.logger?.warn({ err, deviceId }, failed));
    });
    if (ids.length > 0) opts.logger?.info({ devices: ids.length }, done);
  }

  async function inBatches(items: string[], run: (item: string) => Promise<void>): Promise<void> {
    const queue = [...items];
    const worker = async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) await run(item);
    };
    await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 16, queue.length) }, worker));
  }

  return {
    settled: () => work,
    close: off,
  };
}
