/** The device-protocol codec as the load generator uses it: encode, or decode to a frame or undefined. */
import { decodeFrame, encodeFrame } from '../../../device-protocol/codec.ts';
import type { Frame } from '../../../device-protocol/messages.ts';

export function encodeBenchFrame(frame: Frame): Uint8Array {
  return encodeFrame(frame);
}

export function decodeBenchFrame(bytes: Uint8Array): Frame | undefined {
  const r = decodeFrame(bytes);
  return r.ok ? r.frame : undefined;
}
