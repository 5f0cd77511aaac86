/**
 * Public surface of the device protocol: frame types, error codes, the codec
 * and (from handset.ts) the Handset SDK. Runs in Node, browsers and handsets:
 * nothing here imports `node:` modules or server code.
 */

export * from './codec.ts';
export * from './errors.ts';
export {
  capabilitiesSpec,
  FRAME_SPECS,
  frameSpecOf,
  type CarrierState,
  type Direction,
  type FieldSpec,
  type FieldType,
  type FrameSpec,
  type MessageSpec,
} from './frames/index.ts';
export * from './messages.ts';
export { ValueTag } from './value.ts';
// Handset SDK (added by its owner):
export * from './handset.ts';
