/**
 * Public surface of the device protocol: frame types, error codes, the codec,
 * frame compression, the compact mail/IM encodings and (from handset.ts) the
 * Handset SDK. The SDK's package export (`mmgw/sdk`) and what the server
 * imports from here are the same surface. Runs in Node, browsers and
 * handsets: nothing here imports `node:` modules or server code.
 */

export * from './codec.ts';
export * from './compression.ts';
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
// The compact encodings (SPEC.md §9): the server compacts, the SDK's plugins (imCompactPlugin,
// mailHeadersPlugin, from handset.ts) expand.
export {
  compactImEvent,
  compactRoster,
  expandImEvent,
  expandRoster,
  IM_COMPACT,
  IM_COMPACT_EVENTS,
} from './im-compact.ts';
export { compactHeaders, expandHeaders, MAIL_HEADER_COLUMNS } from './mail-headers.ts';
// The SDK's cursor keeper (SPEC.md §5 "Push cursors"): gap detection and catch-up beside a Handset.
export * from './push-cursors.ts';
export * from './messages.ts';
export { ValueTag } from './value.ts';
// Handset SDK (added by its owner):
export * from './handset.ts';
