/** Public surface of the transcoder: the role, its bus protocol and client, and the pure pieces the CLI uses. */
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
export {
  startTranscoder,
  type StartTranscoderOptions,
  type TranscoderRole,
  type TranscoderStats,
} from './role.ts';
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
