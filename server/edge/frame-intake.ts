/**
 * Frame intake: one frame's bytes from a carrier are checked in order (size,
 * the frame rate, DEFLATE, decode) before they are dispatched; the first that
 * fails ends the carrier with its typed Error. Long-poll requests meet the
 * same frame rate here. The frame bucket belongs to the carrier's session,
 * or before it to its source address (pre-auth.ts): a fresh carrier brings no
 * fresh bucket.
 */
import { decodeFrame } from '../../device-protocol/codec.ts';
import { COMPRESSED_FRAME, plainFrame } from '../../device-protocol/compression.ts';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { DecodeLimits, Frame } from '../../device-protocol/messages.ts';
import { CLOSED, type Carrier, type PollCarrier } from './carriers.ts';
import { type EdgeLimits, takeToken } from './limits.ts';
import type { EdgeStats } from './metrics.ts';
import type { PreAuthGate } from './pre-auth.ts';

export interface FrameIntakeHost {
  readonly limits: EdgeLimits;
  readonly decodeLimits: DecodeLimits;
  readonly stats: Pick<EdgeStats, 'framesIn' | 'bytesIn'>;
  readonly preAuth: Pick<PreAuthGate, 'takeFrame'>;
  now(): number;
  fatal(c: Carrier, code: string, message: string, retryAfterMs?: number): void;
  /** A frame that passed every check. */
  dispatch(c: Carrier, frame: Frame): void;
}

export class FrameIntake {
  constructor(private readonly host: FrameIntakeHost) {}

  /** Returns false when the carrier closed because of the frame. */
  receive(c: Carrier, bytes: Uint8Array): boolean {
    const h = this.host;
    if (c.state === CLOSED) return false;
    h.stats.framesIn++;
    h.stats.bytesIn += bytes.length;
    if (c.session !== undefined) c.session.bytesIn += bytes.length;
    const now = h.now();
    if (bytes.length > h.limits.maxFrameBytes) {
      h.fatal(
        c,
        'protocol.frame_too_large',
        `A frame of ${bytes.length} bytes exceeds the limit of ${h.limits.maxFrameBytes}.`,
      );
      return false;
    }
    if (!this.takeFrameToken(c, now)) {
      h.fatal(c, 'session.rate_limited', 'Too many frames per second.', 1000);
      return false;
    }
    c.lastHeardAt = now;
    let frameBytes = bytes;
    if (bytes[0] === COMPRESSED_FRAME) {
      try {
        frameBytes = plainFrame(bytes, c.compression, h.limits.maxFrameBytes);
        c.compressedAt = now;
      } catch (err) {
        if (!(err instanceof GatewayError)) throw err;
        h.fatal(c, err.code, err.message);
        return false;
      }
    }
    const decoded = decodeFrame(frameBytes, h.decodeLimits);
    if (!decoded.ok) {
      h.fatal(c, decoded.error.code, decoded.error.message);
      return false;
    }
    h.dispatch(c, decoded.frame);
    return c.state !== CLOSED;
  }

  /**
   * A long-poll GET counts against the frame rate like a frame (a spinning
   * client is limited too), except the one that follows an answer with frames:
   * a device that keeps a GET held, as it should, re-polls as fast as the
   * gateway has frames for it, and must not be cut for the gateway's own pace.
   */
  pollRequestAllowed(c: PollCarrier): boolean {
    const now = this.host.now();
    c.lastHeardAt = now;
    if (c.repollOwed) {
      c.repollOwed = false;
      return true;
    }
    if (this.takeFrameToken(c, now)) return true;
    this.host.fatal(c, 'session.rate_limited', 'Too many requests per second.', 1000);
    return false;
  }

  private takeFrameToken(c: Carrier, now: number): boolean {
    const s = c.session;
    if (s !== undefined) return takeToken(s, this.host.limits, now);
    const e = c.preAuth;
    return e === undefined || this.host.preAuth.takeFrame(e, now);
  }
}
