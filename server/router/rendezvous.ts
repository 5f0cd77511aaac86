/**
 * Rendezvous (highest-random-weight) hashing: a device goes to the node whose
 * hash of (node, device) is highest. Every node computes the same answer from
 * the same live-node list, with no coordination; removing a node moves only
 * the devices it held, and adding one moves about 1/(n+1) of them.
 *
 * The weight is 64 bits (two 32-bit halves compared in order), from FNV-1a
 * over the string finished by the murmur3 finalizer for avalanche. Pure
 * arithmetic, no crypto: this runs for every request the edge routes.
 */
import type { DeviceRouter, LeaveFacts, NodeHeartbeat } from '../bus/bus.ts';

const FNV_PRIME = 0x01000193;

/** murmur3 fmix32: every input bit flips about half of the output bits. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function fnv1a(s: string, basis: number): number {
  let h = basis;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

/** A 64-bit hash of a string as two 32-bit halves. */
export function hash64(s: string): [number, number] {
  return [fmix32(fnv1a(s, 0x811c9dc5)), fmix32(fnv1a(s, 0x050c5d1f) ^ 0x9e3779b9)];
}

interface HashedNode {
  id: string;
  h1: number;
  h2: number;
}

function hashNode(id: string): HashedNode {
  const [h1, h2] = hash64(id);
  return { id, h1, h2 };
}

/** Picks among pre-hashed nodes; ties (1 in 2^64) go to the smaller node id, so the answer stays deterministic. */
function pickHashed(key: string, nodes: readonly HashedNode[]): string | undefined {
  if (nodes.length === 0) return undefined;
  if (nodes.length === 1) return nodes[0]!.id;
  const [k1, k2] = hash64(key);
  let best: HashedNode | undefined;
  let bestHi = -1;
  let bestLo = -1;
  for (const node of nodes) {
    const hi = fmix32((k1 ^ node.h1) >>> 0);
    const lo = fmix32((k2 ^ node.h2 ^ hi) >>> 0);
    if (
      hi > bestHi ||
      (hi === bestHi && (lo > bestLo || (lo === bestLo && best !== undefined && node.id < best.id)))
    ) {
      best = node;
      bestHi = hi;
      bestLo = lo;
    }
  }
  return best?.id;
}

/** The node with the highest weight for `key`; undefined when `nodes` is empty. Deterministic. */
export function rendezvousPick(key: string, nodes: readonly string[]): string | undefined {
  return pickHashed(key, nodes.map(hashNode));
}

/** What the router needs from Membership (kept narrow so tests can feed a list). */
export interface NodeSource {
  nodes(role?: string): NodeHeartbeat[];
  onChange(listener: () => void): () => void;
}

export interface RendezvousRouterOptions {
  /** Role of the nodes to pick among; default 'transport'. */
  role?: string;
}

/**
 * DeviceRouter over the live nodes of one role. Draining nodes take no new
 * devices while another node serves. The hashed node list is rebuilt only when membership changes, so
 * pick() costs one key hash and one pass over the nodes.
 */
export class RendezvousRouter implements DeviceRouter {
  private hashed: HashedNode[] = [];
  private readonly role: string;
  private readonly stopListening: () => void;
  /** Every member of the role, draining ones too (a node gone from here left), and whether it drains. */
  private members = new Map<string, boolean>();
  private readonly leaveListeners = new Set<(nodeId: string, left: LeaveFacts) => void>();

  constructor(
    private readonly membership: NodeSource,
    options: RendezvousRouterOptions = {},
  ) {
    this.role = options.role ?? 'transport';
    this.stopListening = membership.onChange(() => this.refresh());
    this.refresh();
  }

  pick(deviceId: string): string | undefined {
    return pickHashed(deviceId, this.hashed);
  }

  /** The node ids currently picked among, sorted. */
  nodeIds(): string[] {
    return this.hashed.map((n) => n.id);
  }

  onLeave(listener: (nodeId: string, left: LeaveFacts) => void): () => void {
    this.leaveListeners.add(listener);
    return () => this.leaveListeners.delete(listener);
  }

  close(): void {
    this.stopListening();
  }

  private refresh(): void {
    const all = this.membership.nodes(this.role);
    const before = this.members;
    this.members = new Map(all.map((n) => [n.nodeId, n.draining === true]));
    for (const [id, draining] of before) {
      if (this.members.has(id)) continue;
      for (const listener of this.leaveListeners) listener(id, { draining });
    }
    const serving = all.filter((n) => !n.draining);
    // Draining nodes take no new devices, unless nothing else is left.
    const ids = (serving.length > 0 ? serving : all).map((n) => n.nodeId).sort();
    this.hashed = ids.map(hashNode);
  }
}
