/**
 * From what a handset declared at hello (or its admin capability profile) to
 * the variant specs of an image attachment: `thumb`, `screen`, `original`.
 */
import type { Capabilities } from '../device-protocol/messages.ts';
import type { ImageVariantSpec } from './image.ts';
import type { OutputFormat } from './limits.ts';

export type ImageVariantName = 'thumb' | 'screen' | 'original';

/** What a handset that declared nothing gets: a small feature phone screen. */
export const DEFAULT_CAPABILITIES: Required<Omit<Capabilities, 'model'>> = {
  screenWidth: 240,
  screenHeight: 320,
  imageFormats: ['jpeg'],
  animates: false,
  imageBudgetBytes: 30_000,
};

/** Capabilities with a profile's values over the device's own (the operator knows better), then defaults. */
export function effectiveCapabilities(
  declared: Capabilities | undefined,
  profile?: Capabilities,
): Required<Omit<Capabilities, 'model'>> {
  const pick = <K extends keyof typeof DEFAULT_CAPABILITIES>(k: K) =>
    (profile?.[k] ?? declared?.[k] ?? DEFAULT_CAPABILITIES[k]) as (typeof DEFAULT_CAPABILITIES)[K];
  return {
    screenWidth: pick('screenWidth'),
    screenHeight: pick('screenHeight'),
    imageFormats: pick('imageFormats'),
    animates: pick('animates'),
    imageBudgetBytes: pick('imageBudgetBytes'),
  };
}

/** WebP when the handset shows it (smaller at the same quality), else JPEG, else PNG. */
export function preferredFormat(formats: readonly string[]): OutputFormat {
  const lower = formats.map((f) => f.toLowerCase());
  if (lower.includes('webp')) return 'webp';
  if (lower.includes('jpeg') || lower.includes('jpg') || lower.length === 0) return 'jpeg';
  if (lower.includes('png')) return 'png';
  return 'jpeg';
}

/** The spec of a variant, or undefined for `original` (sent as is, in chunks). */
export function variantSpec(
  name: ImageVariantName,
  caps: Required<Omit<Capabilities, 'model'>>,
): ImageVariantSpec | undefined {
  const format = preferredFormat(caps.imageFormats);
  switch (name) {
    case 'original':
      return undefined;
    case 'screen':
      return {
        width: caps.screenWidth,
        height: caps.screenHeight,
        format,
        maxBytes: caps.imageBudgetBytes,
        animate: caps.animates,
      };
    case 'thumb': {
      // A list-row thumbnail: a quarter of the short side, a fraction of the budget.
      const side = Math.max(32, Math.floor(Math.min(caps.screenWidth, caps.screenHeight) / 4));
      return {
        width: side,
        height: side,
        format,
        maxBytes: Math.max(1024, Math.min(4096, Math.floor(caps.imageBudgetBytes / 6))),
      };
    }
  }
}
