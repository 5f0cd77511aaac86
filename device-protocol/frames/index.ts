/** Every frame kind's schema, indexed by kind number. */

import type { Kind } from '../messages.ts';
import { ackSpec } from './ack.ts';
import { byeSpec } from './bye.ts';
import { errorSpec } from './error.ts';
import { eventSpec } from './event.ts';
import { helloSpec } from './hello.ts';
import { pingSpec } from './ping.ts';
import { pongSpec } from './pong.ts';
import { requestSpec } from './request.ts';
import { responseSpec } from './response.ts';
import { resumeSpec } from './resume.ts';
import type { FrameSpec } from './schema.ts';
import { welcomeSpec } from './welcome.ts';

export { capabilitiesSpec } from './hello.ts';
export type { CarrierState, Direction, FieldSpec, FieldType, FrameSpec, MessageSpec } from './schema.ts';
export { WIRE_TYPE_OF, WireType } from './schema.ts';

/** In kind order. */
export const FRAME_SPECS: readonly FrameSpec[] = [
  helloSpec,
  welcomeSpec,
  resumeSpec,
  ackSpec,
  pingSpec,
  pongSpec,
  requestSpec,
  responseSpec,
  eventSpec,
  errorSpec,
  byeSpec,
];

const byKind: (FrameSpec | undefined)[] = [];
for (const spec of FRAME_SPECS) byKind[spec.kind] = spec;

export function frameSpecOf(kind: Kind | number): FrameSpec | undefined {
  return byKind[kind];
}
