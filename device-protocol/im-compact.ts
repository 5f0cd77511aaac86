/**
 * The compact wire forms of the chat (IM) bodies a handset receives most
 * often (SPEC.md §9): a pushed chat message, contact presence, a delivery
 * receipt, a typing notification, and the roster. The documented forms
 * (docs/handset-json.md) repeat every field name in every event and carry
 * times as ISO strings; the compact forms are positional lists under short
 * event names, with enums as small integers and times as epoch milliseconds.
 *
 * A device opts in by listing `im.compact` in Hello caps `encodings`; the
 * gateway then pushes the compact forms (compactImEvent) and the Handset SDK
 * turns them back into the documented ones (expandImEvent, through
 * imCompactPlugin), so applications and the JSON-lines handset see exactly
 * the documented shapes. A body the
 * compact form cannot carry exactly (an unknown field, an odd value) is sent
 * in the documented form: compaction never loses anything.
 *
 * Pure: no `node:` imports (runs in browsers and handsets too).
 */
import { type HandsetPlugin, isValueMap } from './handset-plugin.ts';
import type { Value } from './messages.ts';

/** The Hello caps `encodings` entry that asks for these forms. */
export const IM_COMPACT = 'im.compact';

type Body = { [key: string]: Value };

const SHOWS = ['unavailable', 'available', 'away', 'chat', 'dnd', 'xa'] as const;
const CHAT_STATES = ['active', 'composing', 'paused', 'inactive', 'gone'] as const;
const SUBSCRIPTIONS = ['none', 'to', 'from', 'both', 'remove'] as const;

/** Short event name → documented event name. */
export const IM_COMPACT_EVENTS: Readonly<Record<string, string>> = {
  'im.m': 'im.message',
  'im.p': 'im.presence',
  'im.r': 'im.receipt',
  'im.t': 'im.typing',
};

/** im.message flags (bit set). */
const OUT = 1;
const CARBON = 2;
const TRUNCATED = 4;

const isBody = (v: unknown): v is Body => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const onlyKeys = (body: Body, allowed: readonly string[]) =>
  Object.keys(body).every((k) => body[k] === undefined || allowed.includes(k));
const code = (list: readonly string[], v: unknown): number => (isStr(v) ? list.indexOf(v) : -1);

const MESSAGE_KEYS = [
  'account',
  'from',
  'to',
  'body',
  'stanzaId',
  'originId',
  'at',
  'direction',
  'carbon',
  'truncated',
  'prev',
];

function compactMessage(b: Body): Value[] | undefined {
  if (!onlyKeys(b, MESSAGE_KEYS)) return undefined;
  const { account, from, to, body, stanzaId, originId, at, direction } = b;
  if (!isStr(account) || !isStr(from) || !isStr(to) || !isStr(body)) return undefined;
  if (stanzaId !== undefined && !isStr(stanzaId)) return undefined;
  if (originId !== undefined && !isStr(originId)) return undefined;
  if (direction !== 'in' && direction !== 'out') return undefined;
  if (b.carbon !== undefined && b.carbon !== true) return undefined;
  if (b.truncated !== undefined && b.truncated !== true) return undefined;
  const ms = isStr(at) ? Date.parse(at) : Number.NaN;
  // Only a time that comes back as the same string (ISO, milliseconds, UTC).
  if (!Number.isSafeInteger(ms) || ms < 0 || new Date(ms).toISOString() !== at) return undefined;
  if (b.prev !== undefined && b.prev !== null && !isStr(b.prev)) return undefined;
  const flags = (direction === 'out' ? OUT : 0) | (b.carbon ? CARBON : 0) | (b.truncated ? TRUNCATED : 0);
  const list: Value[] = [account, from, to, body, stanzaId ?? null, originId ?? null, ms, flags];
  // Appended, so that an SDK that reads eight items still reads the rest right.
  if (b.prev !== undefined) list.push(b.prev);
  return list;
}

function expandMessage(l: Value[]): Body {
  const [account, from, to, body, stanzaId, originId, at, flags, prev] = l;
  const f = typeof flags === 'number' ? flags : 0;
  const out: Body = { account: account ?? null, from: from ?? null, to: to ?? null, body: body ?? null };
  if (stanzaId != null) out.stanzaId = stanzaId;
  if (originId != null) out.originId = originId;
  out.at = typeof at === 'number' ? new Date(at).toISOString() : (at ?? null);
  out.direction = f & OUT ? 'out' : 'in';
  if (f & CARBON) out.carbon = true;
  if (f & TRUNCATED) out.truncated = true;
  if (l.length > 8) out.prev = prev ?? null;
  return out;
}

function compactPresence(b: Body): Value[] | undefined {
  if (!onlyKeys(b, ['account', 'items']) || !isStr(b.account) || !Array.isArray(b.items)) return undefined;
  const out: Value[] = [b.account];
  for (const item of b.items) {
    if (!isBody(item) || !onlyKeys(item, ['jid', 'show', 'status']) || !isStr(item.jid)) return undefined;
    const show = code(SHOWS, item.show);
    if (show < 0 || (item.status !== undefined && !isStr(item.status))) return undefined;
    out.push(item.jid, show, item.status ?? null);
  }
  return out;
}

function expandPresence(l: Value[]): Body {
  const items: Body[] = [];
  for (let i = 1; i + 1 < l.length; i += 3) {
    const item: Body = { jid: l[i] ?? null, show: SHOWS[l[i + 1] as number] ?? 'available' };
    if (l[i + 2] != null) item.status = l[i + 2] as Value;
    items.push(item);
  }
  return { account: l[0] ?? null, items };
}

/**
 * The compact form of a pushed IM event, or undefined when it has none (or
 * this body cannot be carried exactly): then push the documented form.
 */
export function compactImEvent(
  name: string,
  body: Value | undefined,
): { name: string; body: Value } | undefined {
  if (!isBody(body)) return undefined;
  switch (name) {
    case 'im.message': {
      const l = compactMessage(body);
      return l && { name: 'im.m', body: l };
    }
    case 'im.presence': {
      const l = compactPresence(body);
      return l && { name: 'im.p', body: l };
    }
    case 'im.receipt': {
      const { account, from, id } = body;
      if (!onlyKeys(body, ['account', 'from', 'id']) || ![account, from, id].every(isStr)) return undefined;
      return { name: 'im.r', body: [account, from, id] as Value[] };
    }
    case 'im.typing': {
      const { account, from, state } = body;
      const s = code(CHAT_STATES, state);
      if (!onlyKeys(body, ['account', 'from', 'state']) || !isStr(account) || !isStr(from) || s < 0)
        return undefined;
      return { name: 'im.t', body: [account, from, s] };
    }
    default:
      return undefined;
  }
}

/** The documented form of a pushed event; anything not in compact form passes unchanged. */
export function expandImEvent(name: string, body: Value | undefined): { name: string; body?: Value } {
  const long = IM_COMPACT_EVENTS[name];
  if (long === undefined || !Array.isArray(body)) return body === undefined ? { name } : { name, body };
  switch (name) {
    case 'im.m':
      return { name: long, body: expandMessage(body) };
    case 'im.p':
      return { name: long, body: expandPresence(body) };
    case 'im.r':
      return { name: long, body: { account: body[0] ?? null, from: body[1] ?? null, id: body[2] ?? null } };
    default:
      return {
        name: long,
        body: {
          account: body[0] ?? null,
          from: body[1] ?? null,
          state: CHAT_STATES[body[2] as number] ?? 'active',
        },
      };
  }
}

const ROSTER_KEYS = ['jid', 'name', 'groups', 'subscription', 'ask', 'presence', 'status'];

/**
 * An im.roster answer's `items` as `rows` of [jid, name, groups,
 * subscription, presence, status, ask] (absent fields null, enums as
 * integers). The answer passes unchanged when an item does not fit.
 */
export function compactRoster(result: Body): Body {
  const items = result.items;
  if (!Array.isArray(items)) return result;
  const rows: Value[] = [];
  for (const item of items) {
    if (!isBody(item) || !onlyKeys(item, ROSTER_KEYS) || !isStr(item.jid)) return result;
    const sub = code(SUBSCRIPTIONS, item.subscription);
    const presence = code(SHOWS, item.presence);
    const groups = item.groups ?? [];
    if (sub < 0 || presence < 0 || !Array.isArray(groups) || !groups.every(isStr)) return result;
    if ([item.name, item.status, item.ask].some((v) => v !== undefined && !isStr(v))) return result;
    rows.push([item.jid, item.name ?? null, groups, sub, presence, item.status ?? null, item.ask ?? null]);
  }
  const { items: _items, ...rest } = result;
  return { ...rest, rows };
}

/** `rows` → `items` (the documented im.roster answer); an answer without `rows` passes unchanged. */
export function expandRoster(result: Body): Body {
  const { rows, ...rest } = result;
  if (!Array.isArray(rows)) return result;
  const items = rows.map((row) => {
    const [jid, name, groups, sub, presence, status, ask] = Array.isArray(row) ? row : [];
    const item: Body = { jid: jid ?? null };
    if (name != null) item.name = name;
    item.groups = Array.isArray(groups) ? groups : [];
    item.subscription = SUBSCRIPTIONS[sub as number] ?? 'none';
    if (ask != null) item.ask = ask;
    item.presence = SHOWS[presence as number] ?? 'unavailable';
    if (status != null) item.status = status;
    return item;
  });
  return { ...rest, items };
}

const expandRosterAnswer = (answer: Value | undefined) =>
  isValueMap(answer) ? expandRoster(answer) : answer;

/**
 * The Handset SDK's plugin for these forms: asks for `im.compact` in Hello,
 * sends `im.roster` with `compact: true` unless the application says
 * otherwise (and expands `rows` whenever they come), fills in the answer to
 * `im.send` that a gateway leaves out for such a device (SPEC.md §9.1), and
 * expands the compact events.
 */
export const imCompactPlugin: HandsetPlugin = {
  caps: { encodings: [IM_COMPACT] },
  request(method, body) {
    if (!isValueMap(body)) return undefined;
    if (method === 'im.roster') {
      return {
        body: body.compact === undefined ? { ...body, compact: true } : body,
        expandResponse: expandRosterAnswer,
      };
    }
    if (method === 'im.send') {
      // The body-less answer stands for {account, clientId} of the request.
      return {
        expandResponse: (answer) =>
          answer ?? { account: body.account ?? null, clientId: body.clientId ?? null },
      };
    }
    return undefined;
  },
  expandEvent(name, body) {
    return IM_COMPACT_EVENTS[name] === undefined ? undefined : expandImEvent(name, body);
  },
};
