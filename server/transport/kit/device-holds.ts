/**
 * Which transport runs a device's backend sessions now (issue #12): one record
 * per device in the cluster's shared table `transport_holds`, {node, at}.
 *
 * The router says which node should serve a device; this record says which
 * one still does. They differ while a device moves: a node that returns (or a
 * drain that ends) moves devices back to the node the router picks, and the
 * node giving them up must stop its INBOX watchers and XMPP sessions, and
 * write their last marks and archive cursors, before the new one starts from
 * them, or a mail or chat message is pushed by both or by neither. So the new
 * node waits, before it brings a device up, until the record no longer names
 * another live node (that one released it) or `waitMs` passed (a node that is
 * stuck does not keep a device down for longer), then writes its own name.
 * A dead node's name does not hold anyone up: its sessions died with it.
 */
import type { SharedState, SharedTable } from '../../store/shared/table.ts';
import { modify } from '../../store/shared/table.ts';

export interface DeviceHoldV1 {
  v: 1;
  node: string;
  /** Date.now() of the take. */
  at: number;
}

export const DEVICE_HOLDS_TABLE = 'transport_holds';

/** How long a node waits for a live one to release a device before taking it anyway. */
export const HOLD_WAIT_MS = 5000;

export function readDeviceHold(raw: unknown): DeviceHoldV1 {
  const r = raw as Partial<DeviceHoldV1> | null;
  if (r === null || typeof r !== 'object' || r.v !== 1) throw new Error('not a device hold of version 1');
  if (typeof r.node !== 'string' || r.node.length === 0 || !Number.isFinite(r.at)) {
    throw new Error('a device hold needs node and at');
  }
  return { v: 1, node: r.node, at: r.at as number };
}

export interface DeviceHoldsOptions {
  nodeId: string;
  /** Whether a node is in the membership now. */
  live(nodeId: string): boolean;
  waitMs?: number;
  now?: () => number;
}

export class DeviceHolds {
  readonly #table: SharedTable<DeviceHoldV1>;
  readonly #opts: DeviceHoldsOptions;
  /** Per device, the acquires waiting for another node to let it go. */
  readonly #waiting = new Map<string, Set<() => void>>();
  #unwatch: (() => void) | undefined;

  constructor(table: SharedTable<DeviceHoldV1>, opts: DeviceHoldsOptions) {
    this.#table = table;
    this.#opts = opts;
  }

  static async open(state: SharedState, opts: DeviceHoldsOptions): Promise<DeviceHolds> {
    return new DeviceHolds(await state.table(DEVICE_HOLDS_TABLE, { read: readDeviceHold }), opts);
  }

  /** The node named as running the device's sessions, if any. */
  holder(deviceId: string): string | undefined {
    return this.#table.get(deviceId)?.value.node;
  }

  /**
   * Waits until no other live node holds the device (or the wait is over),
   * then names this node. Resolves with the node it took the device from
   * (undefined: nobody, or this node already).
   */
  async acquire(deviceId: string): Promise<string | undefined> {
    const { nodeId } = this.#opts;
    const blocking = () => {
      const node = this.holder(deviceId);
      return node !== undefined && node !== nodeId && this.#opts.live(node);
    };
    if (blocking()) await this.#changeOf(deviceId, blocking);
    const previous = this.holder(deviceId);
    if (previous === nodeId) return undefined;
    const now = this.#opts.now ?? Date.now;
    await modify(this.#table, deviceId, (current) =>
      current?.value.node === nodeId ? undefined : { v: 1 as const, node: nodeId, at: now() },
    );
    return previous;
  }

  /** This node no longer runs the device's sessions (it wrote their last marks first). */
  async release(deviceId: string): Promise<void> {
    await modify(this.#table, deviceId, (current) =>
      current?.value.node === this.#opts.nodeId ? null : undefined,
    );
  }

  /** Resolves when `blocking` is false after a change of the key, or after the wait. */
  #changeOf(deviceId: string, blocking: () => boolean): Promise<void> {
    // One watch of the table for every waiting device: a node coming back waits for thousands at once.
    this.#unwatch ??= this.#table.watch((change) => {
      for (const check of this.#waiting.get(change.key) ?? []) check();
    });
    return new Promise((resolve) => {
      let waiters = this.#waiting.get(deviceId);
      if (!waiters) this.#waiting.set(deviceId, (waiters = new Set()));
      const done = () => {
        clearTimeout(timer);
        waiters.delete(check);
        if (waiters.size === 0 && this.#waiting.get(deviceId) === waiters) this.#waiting.delete(deviceId);
        resolve();
      };
      const check = () => {
        if (!blocking()) done();
      };
      const timer = setTimeout(done, this.#opts.waitMs ?? HOLD_WAIT_MS);
      waiters.add(check);
    });
  }
}
