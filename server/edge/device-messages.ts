/**
 * The one handler of device messages from the bus for every session of an
 * edge (Subjects.device(imei), queue group DEVICE_QUEUE): events to sequence,
 * revocations by the registry, takeovers and claims of sessions between
 * edges, answers passed on from the edge a session left, and long-poll
 * requests that landed on another edge (poll-forward.ts). It finds the
 * session by subject; a message for a device without a session here goes to
 * the hand-off, which waits for a claim in progress or passes it on.
 */
import { GatewayError } from '../../device-protocol/errors.ts';
import { type Frame, Kind, type Value } from '../../device-protocol/messages.ts';
import { type BusMessage, Subjects } from '../bus/bus.ts';
import type { DeviceSession } from './device-session.ts';
import type { AnswerMessage, EdgeDeviceMessage, PollMessage } from './edge-messages.ts';
import type { HandOff } from './handoff.ts';
import { checkPollMessage, type PollAnswer } from './poll-forward.ts';

const DEVICE_SUBJECT_PREFIX = Subjects.device('');

/** What the handler needs of its edge. */
export interface DeviceMessageHost {
  readonly table: {
    get(imei: string): DeviceSession | undefined;
    getById(sessionId: string): DeviceSession | undefined;
  };
  readonly handoff: Pick<HandOff, 'notHere' | 'takeoverReceived' | 'claimReceived'>;
  appendSequenced(s: DeviceSession, frame: Frame): number;
  answerPassedOn(s: DeviceSession, m: AnswerMessage): void;
  endSession(s: DeviceSession, code: string, message: string, resumable: boolean): void;
  /** Serves a long-poll request another edge passed on, for a session held here. */
  servePoll(m: PollMessage): Promise<PollAnswer>;
  readonly logger: { info(obj: object, msg: string): void };
}

/** The bus handler of an edge's device subjects (one function for all sessions). */
export function deviceMessageHandler(host: DeviceMessageHost): (msg: BusMessage) => unknown {
  return (msg) => {
    const imei = msg.subject.slice(DEVICE_SUBJECT_PREFIX.length);
    const s = host.table.get(imei);
    const m = msg.data as EdgeDeviceMessage;
    if (m === null || typeof m !== 'object') throw new GatewayError('bus.bad_message', 'Bad device message.');
    switch (m.type) {
      case 'event': {
        if (typeof m.name !== 'string' || m.name.length === 0) {
          throw new GatewayError('request.bad_input', 'An event needs a name.', { field: 'name' });
        }
        if (s === undefined || s.ended) return host.handoff.notHere(msg, imei, m);
        const event: Frame = {
          kind: Kind.Event,
          seq: 0,
          name: m.name,
          ...(m.body === undefined ? {} : { body: m.body as Value }),
        };
        const seq = host.appendSequenced(s, event);
        // Held for a resume, not seen by the device: the transport may wake it (push/index.ts).
        return s.carrier === undefined ? { seq, detached: true } : { seq };
      }
      case 'revoke': {
        if (s === undefined || s.ended) return host.handoff.notHere(msg, imei, m);
        host.logger.info({ imei, code: m.code }, 'session revoked by the registry');
        host.endSession(s, m.code, String(m.reason), false);
        return { ok: true };
      }
      case 'takeover':
        return host.handoff.takeoverReceived(s, m);
      case 'claim':
        return host.handoff.claimReceived(msg, imei, s, m);
      case 'answer': {
        const here = host.table.getById(m.sessionId);
        if (here !== undefined && !here.ended) {
          host.answerPassedOn(here, m);
          return { ok: true };
        }
        if (s !== undefined && !s.ended) return { ok: false }; // another session of the device: drop
        return host.handoff.notHere(msg, imei, m);
      }
      case 'poll': {
        const p = checkPollMessage(m as unknown as Record<string, unknown>);
        if (s === undefined || s.ended) return host.handoff.notHere(msg, imei, p);
        // Another session of the device is here: the one asked for is nowhere (a Hello ends the others).
        if (s.id !== p.sessionId) throw new GatewayError('auth.resume_failed');
        return host.servePoll(p);
      }
      default:
        throw new GatewayError('bus.bad_message', 'Unknown device message type.');
    }
  };
}
