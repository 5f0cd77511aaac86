/**
 * Mutations of a valid-looking body: one change per request, at a field
 * picked at random (or the body itself), so that an answer can be traced to
 * what was changed. The kinds follow what hurt gateways before: wrong types,
 * strings up to the frame limit, deep nesting, unicode edge cases,
 * negative and huge numbers, missing and extra fields (prototype names
 * among them), and ids of other devices' accounts (isolation).
 */
import type { Rng } from './rng.ts';
import {
  EDGE_NUMBERS,
  EDGE_STRINGS,
  isPlainRecord,
  MAX_DEPTH,
  nested,
  PROTOTYPE_KEYS,
  setOwn,
} from './values.ts';

export interface MutationContext {
  rng: Rng;
  /** Largest frame the gateway takes (Welcome.maxFrameBytes). */
  maxFrameBytes: number;
  /** Account ids that belong to other devices. */
  foreignAccounts: readonly string[];
  /** A random Value (fast-check, seeded from `rng`). */
  randomValue(): unknown;
}

export interface Mutated {
  body: unknown;
  /** Which mutation, and where: `huge-string@imap.host`. */
  mutation: string;
  /** Set when an account field now holds another device's account id. */
  foreignAccount?: string;
}

export const MUTATIONS = [
  'wrong-type',
  'null-field',
  'missing-field',
  'extra-field',
  'prototype-key',
  'huge-string',
  'huge-list',
  'deep-nesting',
  'unicode',
  'edge-number',
  'bytes-for-string',
  'body-shape',
  'foreign-account',
] as const;

export type MutationKind = (typeof MUTATIONS)[number];

const WEIGHTS: Record<MutationKind, number> = {
  'wrong-type': 3,
  'null-field': 1,
  'missing-field': 2,
  'extra-field': 1,
  'prototype-key': 1,
  'huge-string': 2,
  'huge-list': 1,
  'deep-nesting': 1,
  unicode: 3,
  'edge-number': 3,
  'bytes-for-string': 1,
  'body-shape': 1,
  'foreign-account': 2,
};

type Path = (string | number)[];

interface Slot {
  path: Path;
  value: unknown;
}

/** Every field and list entry of `body` (not the body itself), depth first, at most `limit`. */
export function slotsOf(body: unknown, limit = 200): Slot[] {
  const out: Slot[] = [];
  const visit = (v: unknown, path: Path) => {
    if (out.length >= limit) return;
    if (path.length > 0) out.push({ path, value: v });
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) visit(v[i], [...path, i]);
    } else if (isPlainRecord(v)) for (const k of Object.keys(v)) visit(v[k], [...path, k]);
  };
  visit(body, []);
  return out;
}

function setAt(body: unknown, path: Path, value: unknown): void {
  let parent = body as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
  const last = path[path.length - 1] as string | number;
  if (typeof last === 'number') (parent as unknown as unknown[])[last] = value;
  else setOwn(parent as Record<string, unknown>, last, value);
}

function deleteAt(body: unknown, path: Path): void {
  let parent = body as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
  const last = path[path.length - 1] as string | number;
  if (Array.isArray(parent)) parent.splice(last as number, 1);
  else delete parent[last];
}

function where(path: Path): string {
  return path.map((k) => (typeof k === 'number' ? `[${k}]` : k)).join('.') || 'body';
}

/** A value of another type than `v`. */
function otherType(v: unknown, ctx: MutationContext): unknown {
  const options: unknown[] = [
    null,
    true,
    0,
    -1,
    1.5,
    'x',
    '',
    new Uint8Array([0xff, 0x00]),
    [],
    [v],
    {},
    { value: v },
  ];
  const same = (x: unknown) =>
    typeof x === typeof v && Array.isArray(x) === Array.isArray(v) && (x === null) === (v === null);
  const pool = options.filter((x) => !same(x));
  return ctx.rng.chance(0.2) ? ctx.randomValue() : ctx.rng.pick(pool);
}

/** A string of about `bytes` UTF-8 bytes, one of a few alphabets. */
function stringOfBytes(bytes: number, rng: Rng): string {
  const unit = rng.pick(['a', 'é', '€', '😀', '\u0000', '\ud800']);
  const unitBytes = unit === '😀' ? 4 : unit === 'é' ? 2 : unit === '€' || unit === '\ud800' ? 3 : 1;
  return unit.repeat(Math.max(1, Math.floor(bytes / unitBytes)));
}

/**
 * One mutation of `body` (changed in place when it is an object or a list;
 * the result is in `body` of the answer either way).
 */
export function mutate(body: unknown, ctx: MutationContext): Mutated {
  const { rng } = ctx;
  const kind = rng.weighted(MUTATIONS.map((k) => [k, WEIGHTS[k]] as const));
  const container = isPlainRecord(body) || Array.isArray(body);
  const slots = container ? slotsOf(body) : [];
  const pickSlot = (filter: (s: Slot) => boolean = () => true): Slot | undefined => {
    const fit = slots.filter(filter);
    return fit.length === 0 ? undefined : rng.pick(fit);
  };
  const replace = (slot: Slot | undefined, value: unknown, name: string): Mutated => {
    if (slot === undefined) return { body: value, mutation: `${name}@body` };
    setAt(body, slot.path, value);
    return { body, mutation: `${name}@${where(slot.path)}` };
  };

  switch (kind) {
    case 'wrong-type': {
      const slot = pickSlot();
      return replace(slot, otherType(slot?.value ?? body, ctx), kind);
    }
    case 'null-field':
      return replace(pickSlot(), null, kind);
    case 'missing-field': {
      const slot = pickSlot();
      if (slot === undefined) return { body: undefined, mutation: `${kind}@body` };
      deleteAt(body, slot.path);
      return { body, mutation: `${kind}@${where(slot.path)}` };
    }
    case 'extra-field':
    case 'prototype-key': {
      const target = isPlainRecord(body) ? body : {};
      const objects = slotsOf(target).filter((s) => isPlainRecord(s.value));
      const at = objects.length > 0 && rng.chance(0.3) ? rng.pick(objects) : undefined;
      const host = (at?.value ?? target) as Record<string, unknown>;
      const key =
        kind === 'prototype-key'
          ? rng.pick(PROTOTYPE_KEYS)
          : rng.pick(['extra', 'x'.repeat(rng.int(1, 300)), '', ' ', 'Account', '$given', '\u0000']);
      const value =
        kind === 'prototype-key' ? rng.pick([{ polluted: true }, null, 'x', 1, []]) : ctx.randomValue();
      setOwn(host, key, value);
      return {
        body: target,
        mutation: `${kind}@${at === undefined ? '' : `${where(at.path)}.`}${JSON.stringify(key).slice(0, 20)}`,
      };
    }
    case 'huge-string': {
      // Mostly just under the frame limit (the SDK refuses a frame over it before sending).
      const room = ctx.maxFrameBytes - 2048;
      const bytes = rng.pick([1024, 16 * 1024, 65_537, room, room, ctx.maxFrameBytes + 1]);
      const slot = pickSlot((s) => typeof s.value === 'string') ?? pickSlot();
      return replace(slot, stringOfBytes(bytes, rng), `${kind}(${bytes})`);
    }
    case 'huge-list': {
      const n = rng.pick([1001, 5000, 10_000]);
      const entry = rng.pick<unknown>([1, 4294967295, 'INBOX', null, {}]);
      const slot = pickSlot((s) => Array.isArray(s.value)) ?? pickSlot();
      return replace(slot, new Array(n).fill(entry), `${kind}(${n})`);
    }
    case 'deep-nesting': {
      // The body sits one level below the frame and the field one more: MAX_DEPTH - 2 still encodes.
      const depth = rng.pick([MAX_DEPTH - 3, MAX_DEPTH - 2, MAX_DEPTH - 1, MAX_DEPTH + 5, 200]);
      return replace(
        pickSlot(),
        nested(depth, rng.pick<unknown>(['x', 1, null]), rng.chance(0.5)),
        `${kind}(${depth})`,
      );
    }
    case 'unicode': {
      const slot = pickSlot((s) => typeof s.value === 'string') ?? pickSlot();
      const edge = rng.pick(EDGE_STRINGS);
      const base = typeof slot?.value === 'string' ? slot.value : '';
      const changed = [edge, base + edge, edge + base, base.normalize('NFD'), base.toUpperCase()].filter(
        (v) => v !== base,
      );
      const value = changed.length > 0 ? rng.pick(changed) : `${base}\u0301`;
      return replace(slot, value, kind);
    }
    case 'edge-number': {
      const slot = pickSlot((s) => typeof s.value === 'number') ?? pickSlot();
      return replace(slot, rng.pick(EDGE_NUMBERS), kind);
    }
    case 'bytes-for-string': {
      const slot = pickSlot((s) => typeof s.value === 'string') ?? pickSlot();
      const text = typeof slot?.value === 'string' ? slot.value : 'x';
      return replace(slot, new TextEncoder().encode(text), kind);
    }
    case 'body-shape': {
      const shape = rng.pick<unknown>([undefined, null, [], [body], 'body', 0, true, new Uint8Array(4), {}]);
      return {
        body: shape,
        mutation: `${kind}(${shape === null ? 'null' : Array.isArray(shape) ? 'list' : typeof shape})`,
      };
    }
    case 'foreign-account': {
      const slot = pickSlot((s) => s.path[s.path.length - 1] === 'account');
      if (slot === undefined || ctx.foreignAccounts.length === 0) {
        const fallback = pickSlot();
        return replace(fallback, otherType(fallback?.value ?? body, ctx), 'wrong-type');
      }
      const foreign = rng.pick(ctx.foreignAccounts);
      setAt(body, slot.path, foreign);
      return { body, mutation: `${kind}@${where(slot.path)}`, foreignAccount: foreign };
    }
  }
}
