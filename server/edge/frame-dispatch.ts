/**
 * Frames from devices, dispatched by kind. Which kinds the gateway accepts in
 * which carrier state is not written here: it comes from each frame file's
 * `direction` and `validIn` (device-protocol/frames/*.ts, SPEC.md §3), and
 * this file only says what to do with each accepted kind. A frame that is
 * not valid in the carrier's state ends the carrier with protocol.bad_state.
 *
 * Frames that arrive while Hello/Resume is being checked (a device may send
 * its first requests right behind its Hello) wait on the carrier, a bounded
 * number, and are dispatched once Welcome left.
 *
 * The tables are arrays indexed by kind, built once; a frame costs one
 * lookup and one call, no closure.
 */
import { encodeFrame } from '../../device-protocol/codec.ts';
import { type CarrierState, FRAME_SPECS } from '../../device-protocol/frames/index.ts';
import { type Frame, type Hello, Kind, type Request, type Resume } from '../../device-protocol/messages.ts';
import { ACTIVE, AUTHENTICATING, type Carrier, OPENING } from './carriers.ts';
import type { DeviceSession } from './device-session.ts';
import { MAX_EARLY_FRAMES } from './limits.ts';

/** What the frame handlers need from the edge. */
export interface FrameHost {
  hello(c: Carrier, h: Hello): void;
  resume(c: Carrier, r: Resume): void;
  request(c: Carrier, s: DeviceSession, r: Request): void;
  endSession(s: DeviceSession, code: string, message: string, resumable: boolean): void;
  fatal(c: Carrier, code: string, message: string): void;
}

type FrameOf<K extends Kind> = Extract<Frame, { kind: K }>;
type Handler = (host: FrameHost, c: Carrier, f: Frame) => void;

/**
 * What the gateway does with each kind it receives. In `active` the carrier
 * has a session (attach sets both).
 */
const HANDLERS: { [K in Kind]?: (host: FrameHost, c: Carrier, f: FrameOf<K>) => void } = {
  [Kind.Hello]: (host, c, f) => host.hello(c, f),
  [Kind.Resume]: (host, c, f) => host.resume(c, f),
  [Kind.Ack]: (_host, c, f) => c.session!.ack(f.seq),
  [Kind.Ping]: (_host, c, f) => c.control(encodeFrame({ kind: Kind.Pong, nonce: f.nonce })),
  [Kind.Pong]: () => {},
  [Kind.Request]: (host, c, f) => host.request(c, c.session!, f),
  // The device logs out: nothing to keep for a Resume.
  [Kind.Bye]: (host, c) =>
    host.endSession(c.session!, 'session.logout', 'The device ended its session.', false),
};

/** The handlers by kind for the frames a device may send in `state`. */
export function frameTable(state: CarrierState): readonly (Handler | undefined)[] {
  const table: (Handler | undefined)[] = [];
  for (const spec of FRAME_SPECS) table[spec.kind] = undefined;
  for (const spec of FRAME_SPECS) {
    if (spec.direction === 'gateway→device' || !spec.validIn.includes(state)) continue;
    const handler = HANDLERS[spec.kind];
    if (handler === undefined) throw new Error(`The edge has no handler for ${spec.name} frames.`);
    table[spec.kind] = handler as Handler;
  }
  return table;
}

/** The kinds the edge handles (a handler no table uses is dead code: see frame-dispatch.test.ts). */
export const HANDLED_KINDS: readonly Kind[] = Object.keys(HANDLERS).map(Number);

const OPENING_TABLE = frameTable('opening');
const ACTIVE_TABLE = frameTable('active');

/** One decoded frame from carrier `c`. */
export function dispatchFrame(host: FrameHost, c: Carrier, f: Frame): void {
  const state = c.state;
  if (state === ACTIVE) {
    const handler = ACTIVE_TABLE[f.kind];
    if (handler !== undefined) handler(host, c, f);
    else host.fatal(c, 'protocol.bad_state', `A ${Kind[f.kind] ?? 'frame'} frame is not valid here.`);
    return;
  }
  if (state === OPENING) {
    const handler = OPENING_TABLE[f.kind];
    if (handler !== undefined) handler(host, c, f);
    else host.fatal(c, 'protocol.bad_state', 'The first frame must be Hello or Resume.');
    return;
  }
  if (state === AUTHENTICATING) {
    c.early ??= [];
    if (c.early.length >= MAX_EARLY_FRAMES) {
      host.fatal(c, 'protocol.bad_state', 'Too many frames before Welcome.');
      return;
    }
    c.early.push(f);
  }
}

/** After Welcome: the frames that came while the handshake ran, in order, while the carrier stays active. */
export function dispatchEarlyFrames(host: FrameHost, c: Carrier): void {
  const early = c.early;
  if (early === undefined) return;
  c.early = undefined;
  for (const f of early) {
    if (c.state !== ACTIVE) break;
    dispatchFrame(host, c, f);
  }
}
