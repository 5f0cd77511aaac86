/**
 * From what a handset declared at hello (or its admin capability profile) to
 * the variant specs of an image attachment: `thumb`, `screen`, `original`.
 */
import type { Capabilities } from '../device-protocol/messages.ts';
import type { ImageVariantSpec } from './image.ts';
import type { OutputFormat } from './limits.ts';

export type ImageVariantName = 'thumb' | 'screen' | 'original';

/** What a handset that declared nothing gets: a small feature phone screen. */
export const DEFAULT_CAPABILITIES: Required<Omit<Capabilities, 'model' | 'encodings' | 'compression'>> = {
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
): Required<Omit<Capabilities, 'model' | 'encodings' | 'compression'>> {
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
  caps: Required<Omit<Capabilities, 'model' | 'encodings' | 'compression'>>,
  options: { maxQuality?: number } = {},
): ImageVariantSpec | undefined {
  const format = preferredFormat(caps.imageFormats);
  const q = options.maxQuality === undefined ? {} : { maxQuality: options.maxQuality };
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
        ...q,
      };
    case 'thumb': {
      // A list-row thumbnail: a quarter of the short side, a fraction of the budget.
      const side = Math.max(32, Math.floor(Math.min(caps.screenWidth, caps.screenHeight) / 4));
      return {
        width: side,
        height: side,
        format,
        maxBytes: Math.max(1024, Math.min(4096, Math.floor(caps.imageBudgetBytes / 6))),
        ...q,
      };
    }
  }
}

/**
 * An admin capability profile (the `capabilities` reference data: screen,
 * formats, animates, imageBudgetBytes) as Capabilities; fields that are absent
 * or malformed are left out, so the device's own declaration fills them.
 */
export function capabilitiesFromProfile(data: unknown): Capabilities | undefined {
  if (data === null || typeof data !== 'object') return undefined;
  const d = data as Record<string, unknown>;
  const out: Capabilities = {};
  const int = (v: unknown) => (Number.isInteger(v) && (v as number) > 0 ? (v as number) : undefined);
  const screen = d.screen as Record<string, unknown> | undefined;
  const w = int(screen?.width);
  const h = int(screen?.height);
  if (w !== undefined) out.screenWidth = w;
  if (h !== undefined) out.screenHeight = h;
  if (Array.isArray(d.formats) && d.formats.every((f) => typeof f === 'string')) {
    out.imageFormats = d.formats as string[];
  }
  if (typeof d.animates === 'boolean') out.animates = d.animates;
  const budget = int(d.imageBudgetBytes);
  if (budget !== undefined) out.imageBudgetBytes = budget;
  if (typeof d.id === 'string') out.model = d.id;
  return out;
}

/**
 * Caps from the edge are untrusted: keep the fields of the right type and a
 * sane range, drop the rest (the defaults fill them).
 */
export function sanitizeCapabilities(value: unknown): Capabilities | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const v = value as Record<string, unknown>;
  const out: Capabilities = {};
  const dim = (n: unknown) => Number.isInteger(n) && (n as number) >= 16 && (n as number) <= 8192;
  if (dim(v.screenWidth)) out.screenWidth = v.screenWidth as number;
  if (dim(v.screenHeight)) out.screenHeight = v.screenHeight as number;
  if (Array.isArray(v.imageFormats) && v.imageFormats.length <= 16) {
    out.imageFormats = v.imageFormats.filter((f): f is string => typeof f === 'string' && f.length <= 16);
  }
  if (typeof v.animates === 'boolean') out.animates = v.animates;
  if (Number.isInteger(v.imageBudgetBytes) && (v.imageBudgetBytes as number) >= 256) {
    out.imageBudgetBytes = Math.min(v.imageBudgetBytes as number, 16 * 1024 * 1024);
  }
  if (typeof v.model === 'string' && v.model.length <= 100) out.model = v.model;
  return out;
}
