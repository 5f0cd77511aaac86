/**
 * The parts of SPEC.md that are generated from code: the frame field tables
 * (from ./frames/), the error code table (from errors.ts) and the limits
 * table (from messages.ts). spec.test.ts fails when SPEC.md and these drift
 * apart; `MMGW_UPDATE_SPEC=1 node --import tsx --test device-protocol/spec.test.ts`
 * rewrites the generated blocks. Pure (no `node:` imports); not exported from index.ts.
 */

import { ERROR_CODES, type ErrorCode } from './errors.ts';
import {
  FRAME_SPECS,
  type FieldSpec,
  type FrameSpec,
  type MessageSpec,
  WIRE_TYPE_OF,
} from './frames/index.ts';
import { DEFAULT_LIMITS, type DecodeLimits } from './messages.ts';

const TYPE_TEXT: Record<FieldSpec['type'], string> = {
  uint: 'uint',
  bool: 'bool',
  sint: 'sint',
  string: 'string',
  strings: 'string list',
  value: 'Value',
  message: 'message',
};

function fieldTable(spec: MessageSpec): string {
  const rows = spec.fields.map((f) => {
    const type = f.type === 'message' ? `${f.message!.name} (message)` : TYPE_TEXT[f.type];
    return `| ${f.no} | \`${f.name}\` | ${type} | ${WIRE_TYPE_OF[f.type]} | ${f.required ? 'yes' : 'no'} | ${f.doc} |`;
  });
  return [
    '| # | field | type | wire | required | meaning |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

function frameSection(spec: FrameSpec, index: number): string {
  const parts = [
    `### 3.${index + 1} ${spec.name} (kind ${spec.kind})`,
    '',
    `${spec.doc}`,
    '',
    `Direction: ${spec.direction}. Valid in carrier state: ${spec.validIn.map((s) => `\`${s}\``).join(', ')}. ` +
      `Sequenced: ${spec.sequenced}.`,
    '',
    fieldTable(spec),
  ];
  for (const f of spec.fields) {
    if (f.type === 'message') {
      parts.push(
        '',
        `Nested message **${f.message!.name}** (field ${f.no} \`${f.name}\`):`,
        '',
        fieldTable(f.message!),
      );
    }
  }
  return parts.join('\n');
}

/** SPEC.md §3 body: one subsection per frame kind. */
export function framesBlock(): string {
  return FRAME_SPECS.map(frameSection).join('\n\n');
}

interface DeviceAdvice {
  fatal: string;
  action: string;
}

/** By prefix; codes added to errors.ts without an entry here get their prefix's advice. */
const ADVICE_BY_PREFIX: Record<string, DeviceAdvice> = {
  protocol: {
    fatal: 'yes',
    action:
      'A bug on the sending side: log it, reconnect with backoff (Resume), do not resend the same bytes.',
  },
  auth: { fatal: 'yes', action: 'Do not retry automatically; tell the user.' },
  session: { fatal: 'yes (Bye or fatal Error)', action: 'Reconnect with backoff and Resume.' },
  request: { fatal: 'no', action: 'Fails that one request.' },
  mail: { fatal: 'no', action: 'Fails that one request; show it to the user.' },
  credentials: {
    fatal: 'no',
    action: 'Fails that one request; the operator must fix the stored credentials.',
  },
  bus: {
    fatal: '—',
    action: 'Gateway-internal; not sent to devices. If seen, treat like `request.unavailable`.',
  },
  registry: { fatal: '—', action: 'Operator and admin API only; not sent to devices.' },
  config: { fatal: '—', action: 'Gateway start-up only; not sent to devices.' },
  api: { fatal: '—', action: 'Admin REST API only; not sent to devices.' },
};

const ADVICE: Partial<Record<ErrorCode, DeviceAdvice>> = {
  'protocol.unsupported_version': {
    fatal: 'yes',
    action: 'Speak a lower version (§8). Refusals of Hello/Resume are always encoded in version 1.',
  },
  'protocol.frame_too_large': { fatal: 'yes', action: 'Send frames no larger than Welcome `maxFrameBytes`.' },
  'protocol.bad_state': {
    fatal: 'yes',
    action: 'Send Hello or Resume first on a new carrier, and only once.',
  },
  'auth.bad_secret': {
    fatal: 'yes',
    action: 'Ask the user for the device secret; do not retry with the same one.',
  },
  'auth.bad_token': { fatal: 'yes', action: 'Drop the token; Hello again with the secret.' },
  'auth.token_expired': { fatal: 'yes', action: 'Hello again with the secret (and keep the new token).' },
  'auth.resume_failed': {
    fatal: 'yes',
    action: 'Start a new session with Hello; resend requests not yet answered (same ids).',
  },
  'auth.rate_limited': { fatal: 'yes', action: 'Wait `retryAfterMs` (or back off), then retry.' },
  'session.busy': {
    fatal: 'yes, on Resume',
    action:
      'The gateway node holding the session did not hand it over in time (overload): keep the session, wait `retryAfterMs`, Resume again.',
  },
  'bus.timeout': {
    fatal: '—',
    action:
      'Gateway-internal; not sent to devices. Gateways before `session.busy` sent it on a Resume: treat it like `session.busy` there, elsewhere like `request.unavailable`.',
  },
  'session.replaced': {
    fatal: 'yes (Bye, resumable false)',
    action: 'Another connection of this device took over: do not reconnect automatically.',
  },
  'session.moved': {
    fatal: 'yes (Bye on the old carrier)',
    action: 'Expected after switching carrier; ignore it on the old carrier.',
  },
  'session.logout': {
    fatal: 'yes (Bye, resumable false)',
    action:
      'Sent by the device in its own Bye to log out; the gateway answers with the same code and closes.',
  },
  'session.rate_limited': { fatal: 'yes', action: 'Send fewer frames per second; back off, then Resume.' },
  'session.backpressure': { fatal: 'yes (resumable)', action: 'Read faster; Resume (the session was kept).' },
  'session.heartbeat_timeout': {
    fatal: 'yes (resumable)',
    action: 'Ping at least every `heartbeatMs`; Resume.',
  },
  'session.draining': {
    fatal: 'yes (Bye, resumable true)',
    action: 'Wait `reconnectAfterMs`, reconnect (maybe to another node) and Resume.',
  },
  'session.expired': { fatal: 'yes', action: 'Start a new session with Hello.' },
  'session.closed': { fatal: 'yes', action: 'Start a new session with Hello if still needed.' },
  'request.unknown_method': { fatal: 'no', action: 'Do not retry: the gateway does not offer this method.' },
  'request.bad_input': { fatal: 'no', action: 'Do not retry the same body; fix it.' },
  'request.timeout': {
    fatal: 'no',
    action: 'Retry with the same request id after `retryAfterMs` or backoff.',
  },
  'request.unavailable': {
    fatal: 'no',
    action: 'Retry with the same request id after `retryAfterMs` or backoff.',
  },
  'request.duplicate': {
    fatal: 'no',
    action: 'Wait: the answer to the first request with this id will come.',
  },
  'mail.unreachable': { fatal: 'no', action: 'Fails that one request; retry later.' },
  'mail.server_error': { fatal: 'no', action: 'Fails that one request; retry later.' },
  'mail.bad_cursor': { fatal: 'no', action: 'Drop the cursor for that folder and sync it from scratch.' },
  'mail.too_complex': {
    fatal: 'no',
    action:
      'Fails that one request; the message stays listed: show it as unreadable. Retry only when `retryable` (the gateway was busy).',
  },
  'policy.destination_not_allowed': {
    fatal: 'no',
    action: 'Do not retry the same server; the operator decides which servers the gateway reaches.',
  },
  'policy.too_many_accounts': {
    fatal: 'no',
    action: 'Remove an account of the same device before adding another.',
  },
  'push.kind_not_enabled': {
    fatal: 'no',
    action:
      'Do not retry this kind; register a kind the gateway offers (webpush always; fcm, apns, sms where configured; sms only where the service profile allows it).',
  },
  'push.too_many': { fatal: 'no', action: 'Unregister a channel of the same device before adding another.' },
  'push.not_found': { fatal: 'no', action: 'Nothing to remove: `push.list` shows what the device has.' },
  internal: {
    fatal: 'either',
    action: 'Retry later (same request id, or Resume when fatal); report it if it persists.',
  },
};

export function adviceFor(code: string): DeviceAdvice {
  const own = ADVICE[code as ErrorCode];
  if (own) return own;
  const prefix = code.split('.')[0]!;
  return ADVICE_BY_PREFIX[prefix] ?? { fatal: 'no', action: 'Fails that one request.' };
}

/** SPEC.md §6 table: every code in ERROR_CODES, in registry order. */
export function errorsBlock(): string {
  const rows = (Object.keys(ERROR_CODES) as ErrorCode[]).map((code) => {
    const advice = adviceFor(code);
    return `| \`${code}\` | ${ERROR_CODES[code]} | ${advice.fatal} | ${advice.action} |`;
  });
  return [
    '| code | meaning | fatal | what the device should do |',
    '| --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

const LIMIT_TEXT: Record<keyof DecodeLimits, { bounds: string; error: string }> = {
  maxFrameBytes: {
    bounds: 'Bytes in one frame, checked before any byte is parsed.',
    error: 'protocol.frame_too_large',
  },
  maxStringBytes: {
    bounds: 'UTF-8 bytes of one string: frame string fields, Value strings, map keys, string-list items.',
    error: 'protocol.limit',
  },
  maxBytesLength: { bounds: 'Bytes of one Value of type bytes.', error: 'protocol.limit' },
  maxListLength: { bounds: 'Items in one Value list or one string-list field.', error: 'protocol.limit' },
  maxMapEntries: { bounds: 'Entries in one Value map.', error: 'protocol.limit' },
  maxDepth: {
    bounds: 'Lists and maps nested inside each other in one Value (a scalar body has depth 0).',
    error: 'protocol.limit',
  },
  maxBatchFrames: { bounds: 'Frames in one long-poll batch.', error: 'protocol.limit' },
};

/** SPEC.md §7 table. */
export function limitsBlock(): string {
  const rows = (Object.keys(DEFAULT_LIMITS) as (keyof DecodeLimits)[]).map((name) => {
    const t = LIMIT_TEXT[name];
    return `| \`${name}\` | ${DEFAULT_LIMITS[name].toLocaleString('en-US')} | ${t.bounds} | \`${t.error}\` |`;
  });
  return ['| limit | default | bounds | error when exceeded |', '| --- | --- | --- | --- |', ...rows].join(
    '\n',
  );
}

/** The generated blocks of SPEC.md, by marker name. */
export const GENERATED_BLOCKS: Record<string, () => string> = {
  frames: framesBlock,
  errors: errorsBlock,
  limits: limitsBlock,
};
