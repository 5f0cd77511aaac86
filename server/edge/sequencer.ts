/**
 * Sequencing (SPEC.md §5): every frame the gateway sends on its own
 * initiative or in answer to a request gets the session's next seq, is kept
 * in the replay buffer until the device acks it, and goes to the carrier.
 * The replay limits are enforced here: a device that stops acking ends its
 * session rather than the edge's memory.
 */
import type { Logger } from 'pino';
import { encodeFrame } from '../../device-protocol/codec.ts';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Frame } from '../../device-protocol/messages.ts';
import type { DeviceSession } from './device-session.ts';
import type { EdgeLimits } from './limits.ts';

/** What the sequencer needs from the edge. */
export interface SequencerHost {
  endSession(s: DeviceSession, code: string, message: string, resumable: boolean): void;
}

export class Sequencer {
  constructor(
    private readonly host: SequencerHost,
    private readonly limits: EdgeLimits,
    private readonly logger: Logger,
  ) {}

  /**
   * Gives a frame the session's next seq, keeps it for replay and hands it to
   * the carrier; returns the seq. Throws request.bad_input when the frame
   * cannot be encoded, session.backpressure when the replay buffer would
   * overflow (the session is then ended: the device must start anew and
   * re-sync from its cursors).
   */
  append(s: DeviceSession, frame: Frame): number {
    const seq = s.nextSeq;
    (frame as { seq: number }).seq = seq;
    let bytes: Uint8Array;
    try {
      bytes = encodeFrame(frame);
    } catch (err) {
      throw new GatewayError('request.bad_input', 'The frame cannot be encoded for the device.', {
        cause: err,
      });
    }
    if (
      s.replayFrames + 1 > this.limits.maxReplayFrames ||
      s.replayBytes + bytes.length > this.limits.maxReplayBytes
    ) {
      this.logger.info({ imei: s.imei, sessionId: s.id, unacked: s.replayFrames }, 'replay buffer overflow');
      this.host.endSession(
        s,
        'session.backpressure',
        'Too many unacknowledged frames; start a new session.',
        false,
      );
      throw new GatewayError(
        'session.backpressure',
        'The device session overflowed its replay buffer and ended.',
      );
    }
    s.append(bytes);
    s.carrier?.appended(seq);
    return seq;
  }
}
