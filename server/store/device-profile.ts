/**
 * What the transport needs to know of a device from the admin's registry: its
 * service profile (which services it may use, the account presets it offers,
 * the policies) and the accounts an operator provisioned for it. The admin
 * role answers Subjects.deviceProfile with `deviceProfile()`; the transport
 * caches the answer (server/transport/service-profile.ts).
 *
 * Provisioned passwords travel and rest sealed (CredentialCipher, context
 * `provisionedSecretContext`); only a node holding the credentials key opens
 * them, and the transport re-seals them into its own account store.
 */
import { GatewayError } from '../../device-protocol/errors.ts';
import type { AuditActor } from './audit-outbox.ts';
import type { RefRecord } from './ref-store.ts';

export type ServiceName = 'mail' | 'im';
export const SERVICE_NAMES: readonly ServiceName[] = ['mail', 'im'];

/** A server preset of a service profile (admin/api/schemas.ts PresetAccount); never credentials. */
export interface PresetAccount {
  service: ServiceName;
  label: string;
  imapHost?: string;
  imapPort?: number;
  smtpHost?: string;
  smtpPort?: number;
  xmppDomain?: string;
  xmppHost?: string;
  xmppPort?: number;
  /** false: no TLS at all; true or absent: TLS (implicit on 993/465, else STARTTLS). */
  tls?: boolean;
}

/**
 * What a wake-up may show of the newest item (issue 14): nothing but counts
 * (the default: a placeholder text), the sender, or sender and mail subject.
 */
export const WAKEUP_PREVIEWS = ['none', 'sender', 'sender_subject'] as const;
export type WakeupPreview = (typeof WAKEUP_PREVIEWS)[number];

/** Service profile policies; absent or 0 means no limit from the profile. */
export interface ServicePolicies {
  maxAttachmentBytes?: number;
  bodyTruncateBytes?: number;
  imageQuality?: number;
  /** SMS wake-ups (issue 14: push.register kind sms, the last resort); absent or false: none. */
  smsWakeups?: boolean;
  /** Wake-up content (Web Push, FCM, APNs; never SMS); absent: none. */
  wakeupPreview?: WakeupPreview;
}

/** Credentials an operator set for one preset of a device (admin API, `mmgw device account`). */
export interface ProvisionedAccount {
  /** The preset's label in the device's service profile. */
  label: string;
  service: ServiceName;
  /** Mail: the login name. IM: the bare JID. */
  user: string;
  /** Mail: the e-mail address. */
  address?: string;
  /** The password, sealed with the credentials key under provisionedSecretContext(imei, label). */
  secret: string;
  createdAt: number;
  updatedAt: number;
}

export interface DeviceProfile {
  /** The operator (tenant) the device belongs to: what SMS wake-ups are counted per. */
  operator?: string;
  /** The service profile id; absent when the device has none (every service, no presets, no policies). */
  profile?: string;
  /** The services the device may use; absent: every service. */
  services?: ServiceName[];
  presets: PresetAccount[];
  policies: ServicePolicies;
  accounts: ProvisionedAccount[];
}

export function provisionedSecretContext(imei: string, label: string): string {
  return `provisioned:${imei}:${label}`;
}

/** The part of the Registry this reads. */
export interface DeviceProfileRegistry {
  getDevice(imei: string): { profile?: string; operator?: string } | undefined;
  getRef(kind: string, id: string): RefRecord | undefined;
  listDeviceAccounts(imei: string): ProvisionedAccount[];
}

const positiveInt = (v: unknown): number | undefined =>
  Number.isInteger(v) && (v as number) > 0 ? (v as number) : undefined;

/** Reads what the registry holds; records were validated on the way in, so this only drops the odd field. */
export function deviceProfile(registry: DeviceProfileRegistry, imei: string): DeviceProfile {
  const device = registry.getDevice(imei);
  const accounts = device === undefined ? [] : registry.listDeviceAccounts(imei);
  const ref = device?.profile === undefined ? undefined : registry.getRef('service-profiles', device.profile);
  const operator = device?.operator === undefined ? {} : { operator: device.operator };
  if (ref === undefined) return { ...operator, presets: [], policies: {}, accounts };
  const data = ref.data;
  const services = (Array.isArray(data.services) ? data.services : []).filter((s): s is ServiceName =>
    SERVICE_NAMES.includes(s as ServiceName),
  );
  const presets = (Array.isArray(data.accounts) ? data.accounts : []).filter(
    (p): p is PresetAccount =>
      p !== null &&
      typeof p === 'object' &&
      SERVICE_NAMES.includes((p as PresetAccount).service) &&
      typeof (p as PresetAccount).label === 'string',
  );
  const raw = (data.policies ?? {}) as Record<string, unknown>;
  const policies: ServicePolicies = {};
  for (const key of ['maxAttachmentBytes', 'bodyTruncateBytes', 'imageQuality'] as const) {
    const v = positiveInt(raw[key]);
    if (v !== undefined) policies[key] = v;
  }
  if (raw.smsWakeups === true) policies.smsWakeups = true;
  const preview = WAKEUP_PREVIEWS.find((p) => p !== 'none' && p === raw.wakeupPreview);
  if (preview !== undefined) policies.wakeupPreview = preview;
  return { ...operator, profile: ref.id, services, presets, policies, accounts };
}

/** Does the profile let the device use `service`? (No profile, or one without a services list: every service.) */
export function serviceAllowed(
  profile: Pick<DeviceProfile, 'services'> | undefined,
  service: ServiceName,
): boolean {
  return profile?.services === undefined || profile.services.includes(service);
}

/** The preset of `service` with this label, if the profile offers one. */
export function findPreset(
  profile: Pick<DeviceProfile, 'presets'>,
  service: ServiceName,
  label: string,
): PresetAccount | undefined {
  return profile.presets.find((p) => p.service === service && p.label === label);
}

/** Who an operator provisions for a preset: mail needs the address (user defaults to it); chat a JID. */
export interface ProvisionInput {
  label: string;
  address?: string;
  jid?: string;
  user?: string;
  password: string;
}

const BARE_JID = /^[^\s@/]+@[^\s@/]+$/;
const ADDRESS = /^[^\s@]+@[^\s@]+$/;

/**
 * Checks a provisioned account against the device's service profile and
 * stores it with the password sealed by `seal` (CredentialCipher.encrypt with
 * the transport's credentials key). The one path of the admin API and the CLI.
 * Errors: registry.not_found (device), service.unknown_preset (label),
 * service.not_allowed, registry.invalid_field (address, jid, password).
 */
export async function setDeviceAccount(
  registry: DeviceProfileRegistry & {
    putDeviceAccount(
      imei: string,
      account: Omit<ProvisionedAccount, 'createdAt' | 'updatedAt'>,
      audit?: AuditActor,
    ): Promise<{ before?: ProvisionedAccount; after: ProvisionedAccount }>;
  },
  imei: string,
  input: ProvisionInput,
  seal: (secret: string, context: string) => string,
  /** Who sets it, when the registry writes the audit entry (the CLI). */
  audit?: AuditActor,
): Promise<{ before?: ProvisionedAccount; after: ProvisionedAccount }> {
  const device = registry.getDevice(imei);
  if (device === undefined)
    throw new GatewayError('registry.not_found', `no device with IMEI ${imei}`, { field: 'imei' });
  const profile = deviceProfile(registry, imei);
  const { label } = input;
  const preset = findPreset(profile, 'mail', label) ?? findPreset(profile, 'im', label);
  if (preset === undefined)
    throw new GatewayError(
      'service.unknown_preset',
      `the service profile ${device.profile ?? '(none)'} of device ${imei} has no preset labelled ${label}`,
      { field: 'label' },
    );
  if (!serviceAllowed(profile, preset.service))
    throw new GatewayError(
      'service.not_allowed',
      `the service profile ${profile.profile} leaves out ${preset.service}`,
      {
        field: 'label',
      },
    );
  const invalid = (field: string, message: string) =>
    new GatewayError('registry.invalid_field', `${field}: ${message}`, { field });
  if (typeof input.password !== 'string' || input.password === '' || input.password.length > 1024)
    throw invalid('password', '1-1024 characters');
  let user: string;
  let address: string | undefined;
  if (preset.service === 'mail') {
    if (input.jid !== undefined) throw invalid('jid', 'only for a chat preset');
    if (input.address === undefined || !ADDRESS.test(input.address))
      throw invalid('address', 'an e-mail address is required for a mail preset');
    address = input.address;
    user = input.user ?? input.address;
  } else {
    if (input.address !== undefined) throw invalid('address', 'only for a mail preset');
    user = (input.jid ?? input.user ?? '').toLowerCase();
    if (!BARE_JID.test(user))
      throw invalid('jid', 'a bare JID like user@domain is required for a chat preset');
    if (preset.xmppDomain !== undefined && !user.endsWith(`@${preset.xmppDomain.toLowerCase()}`))
      throw invalid('jid', `preset ${label} is for ${preset.xmppDomain}`);
  }
  return registry.putDeviceAccount(
    imei,
    {
      label,
      service: preset.service,
      user,
      ...(address === undefined ? {} : { address }),
      secret: seal(input.password, provisionedSecretContext(imei, label)),
    },
    audit,
  );
}
