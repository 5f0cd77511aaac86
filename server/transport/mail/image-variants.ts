/**
 * Image attachments in the variants a handset can show: `thumb` and `screen`
 * made by the transcoder role (over the bus, queue group `transcoders`, so any
 * transcoder node serves), `original` as stored.
 *
 * The spec of a variant comes from the device's capabilities: what it declared
 * at hello, overridden field by field by the admin capability profile of its
 * model, with the service profile's image quality as the top rung. Sizes (and
 * failures) of the variants made so far are remembered per node, so that the
 * attachment list of mail.body can offer them; the bytes of recent variants
 * are kept too, so that a handset pulling one in chunks does not make the node
 * fetch the source again for every chunk.
 */
import type { Capabilities } from '../../../device-protocol/messages.ts';
import {
  capabilitiesFromProfile,
  DEFAULT_LIMITS,
  effectiveCapabilities,
  type ImageVariantName,
  type ImageVariantSpec,
  sanitizeCapabilities,
  variantKey,
  variantSpec,
} from '../../../transcoder/index.ts';

/** What the admin says about a device's media: its model's capability profile and its service policies. */
export interface MediaProfile {
  capabilities?: Capabilities;
  /** Service profile policy imageQuality (1…100): the highest rung of the quality ladder. */
  imageQuality?: number;
  /** Service profile policy maxAttachmentBytes: larger originals are not offered for download. */
  maxAttachmentBytes?: number;
}

/**
 * Looks up a device's MediaProfile. Injected (openMailService option
 * `mediaProfiles`); absent, the device's own caps and the defaults apply.
 */
export type MediaProfileSource = (
  deviceId: string,
  declared: Capabilities | undefined,
) => MediaProfile | undefined | Promise<MediaProfile | undefined>;

/** The part of the admin Registry this needs (a local one: `all` mode, or a node with the admin role). */
export interface MediaRegistry {
  getDevice(imei: string): { model?: string; profile?: string } | undefined;
  getRef(kind: string, id: string): { data: Record<string, unknown> } | undefined;
  listRefs(kind: string): { id: string; data: Record<string, unknown> }[];
}

/** Reference data kinds of the admin API (admin/api/schemas.ts REF_KINDS). */
const CAPABILITIES_KIND = 'capabilities';
const SERVICE_PROFILES_KIND = 'service-profiles';

/**
 * MediaProfiles from the registry: the capability profile of the device's
 * model (registry field `model`, else the model the handset declared, else
 * the profile whose TAC list holds the first 8 IMEI digits) and the policies
 * of its service profile.
 */
export function registryMediaProfiles(registry: MediaRegistry): MediaProfileSource {
  return (deviceId, declared) => {
    const device = registry.getDevice(deviceId);
    const out: MediaProfile = {};
    const model = device?.model ?? declared?.model;
    let capRef = model === undefined ? undefined : registry.getRef(CAPABILITIES_KIND, model);
    if (capRef === undefined && /^\d{15}$/.test(deviceId)) {
      const tac = deviceId.slice(0, 8);
      capRef = registry
        .listRefs(CAPABILITIES_KIND)
        .find((r) => Array.isArray(r.data.tacs) && (r.data.tacs as unknown[]).includes(tac));
    }
    const capabilities = capabilitiesFromProfile(capRef?.data);
    if (capabilities !== undefined) out.capabilities = capabilities;
    const service =
      device?.profile === undefined ? undefined : registry.getRef(SERVICE_PROFILES_KIND, device.profile);
    const policies = service?.data.policies as Record<string, unknown> | undefined;
    const q = policies?.imageQuality;
    if (Number.isInteger(q) && (q as number) >= 1 && (q as number) <= 100) out.imageQuality = q as number;
    const max = policies?.maxAttachmentBytes;
    if (Number.isInteger(max) && (max as number) > 0) out.maxAttachmentBytes = max as number;
    return out;
  };
}

export type TranscodedVariantName = Exclude<ImageVariantName, 'original'>;
export const TRANSCODED_VARIANTS: readonly TranscodedVariantName[] = ['thumb', 'screen'];

/** Input formats the transcoder reads (its allowlist); anything else is offered as original only. */
const IMAGE_TYPES = new Set([
  'image/jpeg',
  'image/jpg',
  'image/pjpeg',
  'image/png',
  'image/gif',
  'image/webp',
  'image/heif',
  'image/heic',
  'image/avif',
]);

export function isTranscodableImage(type: string): boolean {
  return IMAGE_TYPES.has(type.toLowerCase());
}

/** The specs of thumb and screen for this device. */
export async function deviceVariantSpecs(
  deviceId: string,
  declaredRaw: unknown,
  profiles: MediaProfileSource | undefined,
): Promise<{ specs: Record<TranscodedVariantName, ImageVariantSpec>; profile: MediaProfile }> {
  const declared = sanitizeCapabilities(declaredRaw);
  let profile: MediaProfile = {};
  try {
    profile = (await profiles?.(deviceId, declared)) ?? {};
  } catch {
    // The admin data is a refinement: without it the device's own caps still give a sensible variant.
    profile = {};
  }
  const caps = effectiveCapabilities(declared, profile.capabilities);
  const opts = profile.imageQuality === undefined ? {} : { maxQuality: profile.imageQuality };
  return {
    specs: {
      thumb: variantSpec('thumb', caps, opts) as ImageVariantSpec,
      screen: variantSpec('screen', caps, opts) as ImageVariantSpec,
    },
    profile,
  };
}

/** The source limit of the transcoder, checked on the attachment's size before anything is fetched. */
export const SOURCE_LIMIT_BYTES = DEFAULT_LIMITS.maxSourceBytes;

/** What is known of one variant of one attachment. */
export type VariantOutcome =
  | { size: number; format: string; width: number; height: number }
  | { error: string };

/** Node-local memory of the variants made so far; bounded, oldest first out. */
export class ImageVariantMemo {
  private readonly outcomes = new Map<string, VariantOutcome>();
  private readonly bytes = new Map<string, Uint8Array>();
  private bytesTotal = 0;

  constructor(
    private readonly maxOutcomes = 20_000,
    private readonly maxBytes = 16 * 1024 * 1024,
  ) {}

  /** The identity of a variant: the message (by UIDVALIDITY and UID), the part and the spec. */
  static key(
    account: string,
    folder: string,
    uidValidity: bigint | number | string,
    uid: number,
    part: string,
    spec: ImageVariantSpec,
  ): string {
    return `${account}\u0000${folder}\u0000${uidValidity}\u0000${uid}\u0000${part}\u0000${variantKey(spec)}`;
  }

  outcome(key: string): VariantOutcome | undefined {
    return this.outcomes.get(key);
  }

  remember(key: string, outcome: VariantOutcome, bytes?: Uint8Array): void {
    this.outcomes.delete(key);
    this.outcomes.set(key, outcome);
    while (this.outcomes.size > this.maxOutcomes) {
      const oldest = this.outcomes.keys().next().value as string;
      this.outcomes.delete(oldest);
    }
    if (bytes !== undefined && bytes.byteLength <= this.maxBytes / 4) {
      const old = this.bytes.get(key);
      if (old !== undefined) this.bytesTotal -= old.byteLength;
      this.bytes.delete(key);
      this.bytes.set(key, bytes);
      this.bytesTotal += bytes.byteLength;
      while (this.bytesTotal > this.maxBytes) {
        const [oldest, b] = this.bytes.entries().next().value as [string, Uint8Array];
        this.bytes.delete(oldest);
        this.bytesTotal -= b.byteLength;
      }
    }
  }

  bytesOf(key: string): Uint8Array | undefined {
    return this.bytes.get(key);
  }
}

const memos = new WeakMap<object, ImageVariantMemo>();

/** One memo per mail service (its MailDeps object), made on first use. */
export function memoFor(owner: object): ImageVariantMemo {
  let memo = memos.get(owner);
  if (memo === undefined) {
    memo = new ImageVariantMemo();
    memos.set(owner, memo);
  }
  return memo;
}
