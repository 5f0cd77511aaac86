/**
 * One edge as the hand-off (server/edge/handoff.ts) sees it, for the unit
 * tests of the hand-off and the drain hand-over: a session table, an injected
 * clock, and a device-message handler that routes claims and takeovers to
 * the hand-off.
 */
import { pino } from 'pino';
import { type BusMessage, Subjects, type Subscription } from '../server/bus/bus.ts';
import type { InProcessBus } from '../server/bus/inproc.ts';
import type { DeviceSession } from '../server/edge/device-session.ts';
import type { ClaimMessage, EdgeDeviceMessage } from '../server/edge/edge-messages.ts';
import { HandOff } from '../server/edge/handoff.ts';
import { SessionTable } from '../server/edge/session-table.ts';

const logger = pino({ level: 'silent' });

/** One edge as the hand-off sees it: a table, a clock, and a device-message handler routing to the hand-off. */
export function fakeEdge(bus: InProcessBus, instanceId: string, clock: { now: number }, busTimeoutMs = 1000) {
  const table = new SessionTable();
  const ended: string[] = [];
  const claims: ClaimMessage[] = [];
  const edge = {
    instanceId,
    closed: false,
    table,
    ended,
    claims,
    now: () => clock.now,
    onDeviceMessage: (msg: BusMessage): unknown => {
      const imei = msg.subject.slice(Subjects.device('').length);
      const m = msg.data as EdgeDeviceMessage;
      const s = table.get(imei);
      if (m.type === 'claim') {
        claims.push(m);
        return handoff.claimReceived(msg, imei, s, m);
      }
      if (m.type === 'takeover') return handoff.takeoverReceived(s, m);
      if (s === undefined || s.ended) return handoff.notHere(msg, imei, m);
      return { here: instanceId };
    },
    addSession(s: DeviceSession, sub: Subscription = handoff.subscribe(s.imei)) {
      table.add(s);
      s.sub = sub;
    },
    endSession(s: DeviceSession, code: string, _message: string, resumable: boolean) {
      s.ended = true;
      table.remove(s);
      s.sub?.unsubscribe();
      ended.push(`${s.id} ${code} resumable=${resumable}`);
    },
    handoff: undefined as unknown as HandOff,
  };
  const handoff: HandOff = new HandOff(edge, { bus, busTimeoutMs, logger });
  edge.handoff = handoff;
  return edge;
}
