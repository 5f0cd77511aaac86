/**
 * The shape of a frame schema. Each frame kind has one file beside this one
 * declaring its field numbers and types, its direction and the carrier states
 * it is valid in; the codec is driven by these tables, and SPEC.md §3 is
 * checked against them (spec.test.ts).
 */

import type { Kind } from '../messages.ts';

/**
 * Field types and the wire type each is sent with:
 * - uint:    wire 0, unsigned varint, 0..2^53-1
 * - bool:    wire 0, varint 0 or 1
 * - sint:    wire 1, zigzag varint, -(2^53-1)..2^53-1 (reserved; no v1 field uses it)
 * - string:  wire 2, UTF-8
 * - strings: wire 2, a sequence of (varint length, UTF-8) filling the field
 * - value:   wire 2, one dynamic Value (SPEC.md §2.5)
 * - message: wire 2, nested fields of `message`
 */
export type FieldType = 'uint' | 'bool' | 'sint' | 'string' | 'strings' | 'value' | 'message';

export const WireType = {
  Varint: 0,
  ZigZag: 1,
  Length: 2,
  Fixed64: 5,
} as const;

export const WIRE_TYPE_OF: Record<FieldType, number> = {
  uint: WireType.Varint,
  bool: WireType.Varint,
  sint: WireType.ZigZag,
  string: WireType.Length,
  strings: WireType.Length,
  value: WireType.Length,
  message: WireType.Length,
};

export interface FieldSpec {
  /** Field number, 1..31 (the decoder tracks seen fields in a 32-bit mask). */
  no: number;
  /** Property name in the TypeScript frame type. */
  name: string;
  type: FieldType;
  required: boolean;
  /** For type 'message'. */
  message?: MessageSpec;
  doc: string;
}

export interface MessageSpec {
  name: string;
  fields: FieldSpec[];
}

/** Carrier states (SPEC.md §5): `opening` until Hello/Resume is answered, then `active`. */
export type CarrierState = 'opening' | 'active';

export type Direction = 'device→gateway' | 'gateway→device' | 'both';

export interface FrameSpec extends MessageSpec {
  kind: Kind;
  direction: Direction;
  /** The carrier states in which the receiver accepts this frame. */
  validIn: readonly CarrierState[];
  /** Does it carry a session sequence number that the device acks? */
  sequenced: 'never' | 'always' | 'when it answers a request';
  doc: string;
}
