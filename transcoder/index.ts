/**
 * Public surface of the transcoder for the other folders: its bus protocol
 * and client (the transport's mail.attachment), the limits and variant
 * choices, and the image pipeline the CLI runs on one file. Not the role:
 * node.ts loads role.ts by dynamic import on a node that runs it, so a
 * process that only asks a transcoder does not load the job queue.
 */
export { chunkText, htmlToReadableText, parseMoreToken, type TextChunk } from './body.ts';
export { SourceFingerprint, sourceHash, TranscodeCache, type TranscodeCacheOptions } from './cache.ts';
export {
  checkVariantSpec,
  type ImageVariant,
  type ImageVariantSpec,
  type TranscodeOptions,
  toTranscodeError,
  transcodeImage,
  variantKey,
} from './image.ts';
export {
  configureSharp,
  DEFAULT_LIMITS,
  INPUT_FORMATS,
  type InputFormat,
  OUTPUT_FORMATS,
  type OutputFormat,
  resolveLimits,
  type TranscoderLimits,
} from './limits.ts';
export {
  type BodyReply,
  type BodyRequest,
  type ImageReply,
  type ImageRequest,
  type ImageRequestOptions,
  TRANSCODER_QUEUE_GROUP,
  TranscoderClient,
  type TranscoderClientOptions,
  TranscoderSubjects,
} from './protocol.ts';
export { sniffImageFormat } from './sniff.ts';
export {
  capabilitiesFromProfile,
  DEFAULT_CAPABILITIES,
  effectiveCapabilities,
  type ImageVariantName,
  preferredFormat,
  sanitizeCapabilities,
  variantSpec,
} from './variants.ts';
