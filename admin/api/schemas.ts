/**
 * Every body and query the admin REST API accepts or returns, as zod schemas.
 * The routes (routes/) declare them, the router validates with them and the
 * OpenAPI document (openapi.ts) is generated from them, so the two cannot
 * drift apart. A schema with an id becomes a component of the document.
 * What operators read of the running system (logs, usage, nodes, alarms,
 * audit) is in schemas-ops.ts.
 */
import { z } from 'zod';
import { ADMIN_PASSWORD_LENGTH, WAKEUP_PREVIEWS } from '../../server/index.ts';

/** Reference ids appear in device records and CSV files: the registry's field alphabet. */
export const RefId = z
  .string()
  .regex(/^[A-Za-z0-9._:@-]{1,64}$/, { error: 'use 1-64 letters, digits or . _ : @ -' })
  .meta({ description: 'Identifier: 1-64 letters, digits or . _ : @ -' });

const Imei = z
  .string()
  .meta({ description: '15 digits with a valid Luhn check digit', example: '490154203237518' });
const Imsi = z.string().meta({ description: '14 or 15 digits', example: '310150123456789' });
export const EpochMs = z.number().int().meta({ description: 'Epoch milliseconds' });

export const ErrorBody = z
  .object({
    error: z.object({
      code: z.string().meta({ description: 'Stable error code (device-protocol/errors.ts)' }),
      message: z.string(),
      field: z.string().optional().meta({ description: 'The input field at fault' }),
    }),
  })
  .meta({ id: 'Error' });

// ---- auth ---------------------------------------------------------------

export const AdminRoleName = z.enum(['admin', 'operator', 'viewer']);

export const LoginBody = z
  .object({ name: z.string().min(1).max(64), password: z.string().min(1).max(1024) })
  .strict();
export const LoginReply = z
  .object({
    token: z.string().meta({ description: 'Bearer token (JWT HS256) for the Authorization header' }),
    expiresAt: EpochMs,
    user: z.object({ name: z.string(), role: AdminRoleName }),
  })
  .meta({ id: 'LoginReply' });

export const AdminUser = z
  .object({ name: z.string(), role: AdminRoleName, createdAt: EpochMs })
  .meta({ id: 'AdminUser' });
export const NewAdminUser = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9._@-]{1,64}$/, { error: '1-64 letters, digits or . _ @ -' }),
    role: AdminRoleName,
    password: z
      .string()
      .min(ADMIN_PASSWORD_LENGTH.min, { error: `at least ${ADMIN_PASSWORD_LENGTH.min} characters` })
      .max(ADMIN_PASSWORD_LENGTH.max),
  })
  .strict();
export const RoleBody = z.object({ role: AdminRoleName }).strict();
export const PasswordBody = z
  .object({
    password: z
      .string()
      .min(ADMIN_PASSWORD_LENGTH.min, { error: `at least ${ADMIN_PASSWORD_LENGTH.min} characters` })
      .max(ADMIN_PASSWORD_LENGTH.max),
    oldPassword: z
      .string()
      .max(1024)
      .optional()
      .meta({ description: 'The current password: required when users change their own' }),
  })
  .strict();
export const PasswordReply = z
  .object({
    ok: z.literal(true),
    token: z
      .string()
      .optional()
      .meta({ description: 'Your own password changed: a new token (the old ones stop)' }),
    expiresAt: EpochMs.optional(),
  })
  .meta({ id: 'PasswordReply' });

export const StreamTicket = z
  .object({
    ticket: z.string().meta({ description: 'Pass as ?ticket= to the stream, once, before expiresAt' }),
    expiresAt: EpochMs,
    url: z.string().meta({ description: 'The stream URL with the ticket' }),
  })
  .meta({ id: 'StreamTicket' });

// ---- devices --------------------------------------------------------------

export const DeviceStatus = z.enum(['enabled', 'disabled']);

export const Device = z
  .object({
    imei: Imei,
    imsi: Imsi.optional(),
    operator: RefId,
    operatorProfile: RefId.optional(),
    serviceProfile: RefId.optional(),
    model: RefId.optional().meta({ description: 'Capability profile id (device model)' }),
    status: DeviceStatus,
    createdAt: EpochMs,
    lastSeenAt: EpochMs.optional(),
  })
  .meta({ id: 'Device' });

export const NewDevice = z
  .object({
    imei: z.string().max(32),
    imsi: z.string().max(32).optional(),
    operator: RefId,
    operatorProfile: RefId.optional(),
    serviceProfile: RefId.optional(),
    model: RefId.optional(),
    status: DeviceStatus.optional(),
  })
  .strict()
  .meta({
    id: 'NewDevice',
    description: 'operator, operatorProfile, serviceProfile and model must name existing records',
  });

/** null clears an optional field. */
export const DevicePatch = z
  .object({
    imsi: z.string().max(32).nullable().optional(),
    operator: RefId.optional(),
    operatorProfile: RefId.nullable().optional(),
    serviceProfile: RefId.nullable().optional(),
    model: RefId.nullable().optional(),
    status: DeviceStatus.optional(),
  })
  .strict()
  .meta({ id: 'DevicePatch', description: 'Only the fields given change; null clears an optional one' });

export const DeviceWithSecret = z
  .object({
    device: Device,
    secret: z.string().meta({ description: 'The device secret: shown once, never stored' }),
  })
  .meta({ id: 'DeviceWithSecret' });

export const DeviceList = z
  .object({
    items: z.array(Device),
    next: z
      .string()
      .optional()
      .meta({ description: 'Pass as `after` for the next page; absent on the last page' }),
    total: z
      .number()
      .int()
      .optional()
      .meta({ description: 'Devices in the registry (only when no filter is given)' }),
  })
  .meta({ id: 'DeviceList' });

export const DeviceListQuery = z
  .object({
    imei: z
      .string()
      .regex(/^\d{0,15}$/, { error: 'an IMEI prefix is up to 15 digits' })
      .optional(),
    imsi: z
      .string()
      .regex(/^\d{0,15}$/, { error: 'an IMSI prefix is up to 15 digits' })
      .optional(),
    operator: RefId.optional(),
    operatorProfile: RefId.optional(),
    serviceProfile: RefId.optional(),
    profile: RefId.optional().meta({ description: 'Matches operatorProfile or serviceProfile' }),
    model: RefId.optional(),
    status: DeviceStatus.optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(50),
    after: z
      .string()
      .regex(/^\d{1,15}$/, { error: 'after is an IMEI' })
      .optional(),
  })
  .strict();

export const ImportQuery = z
  .object({
    dryRun: z.enum(['true', 'false']).default('false'),
    mode: z.enum(['all-or-nothing', 'valid-only']).default('all-or-nothing'),
  })
  .strict();

/** A caller's id for an import job (Idempotency-Key): a retry under it answers the same job. */
export const ImportJobId = z
  .string()
  .regex(/^[A-Za-z0-9._:-]{1,64}$/, { error: '1-64 letters, digits or . _ : -' })
  .meta({ description: 'Import job id: 1-64 letters, digits or . _ : -' });

export const ImportRejection = z
  .object({
    line: z.number().int().optional().meta({ description: 'Line in the CSV (the header is line 1)' }),
    imei: z.string().optional(),
    code: z.string(),
    reason: z.string(),
    field: z.string().optional(),
  })
  .meta({ id: 'ImportRejection' });

const ImportSecrets = z.array(z.object({ imei: z.string(), secret: z.string() })).meta({
  description:
    'One-time secrets of the devices written (empty on a dry run, and once delivered in full or after 24 h)',
});
const SecretsState = z.enum(['sealed', 'delivered', 'expired', 'none']).meta({
  description:
    'sealed: kept (encrypted) until delivered once in full or 24 h pass; delivered, expired: wiped; none: no device was written',
});

export const ImportResult = z
  .object({
    mode: z.enum(['all-or-nothing', 'valid-only']),
    dryRun: z.boolean(),
    total: z.number().int(),
    written: z.number().int().meta({ description: 'Rows written (0 on a dry run)' }),
    wouldWrite: z
      .number()
      .int()
      .optional()
      .meta({ description: 'Dry run only: the rows a real import would write' }),
    rejectedCount: z.number().int().meta({ description: 'Rows rejected, all of them' }),
    rejected: z.array(ImportRejection).meta({ description: 'The first 1,000 rejected rows, in file order' }),
    job: z.string().optional().meta({ description: 'The import job (GET /devices/imports/{id})' }),
    replayed: z
      .boolean()
      .optional()
      .meta({ description: 'The Idempotency-Key named a job done earlier: its result, nothing written now' }),
    secretsState: SecretsState.optional(),
    secretsExpireAt: EpochMs.optional(),
    secrets: ImportSecrets,
  })
  .meta({ id: 'ImportResult' });

const ImportJobFields = {
  id: z.string(),
  state: z.enum(['running', 'done', 'failed', 'rolling_back', 'rolled_back']).meta({
    description:
      'done: every row written, with its audit entry; rolled_back: its process died and its rows were removed; failed: refused while writing, nothing written',
  }),
  mode: z.enum(['all-or-nothing', 'valid-only']),
  total: z.number().int(),
  written: z.number().int(),
  rejectedCount: z.number().int(),
  actor: z.string(),
  attempt: z.number().int(),
  startedAt: EpochMs,
  finishedAt: EpochMs.optional(),
  reason: z.string().optional(),
  code: z.string().optional(),
  secretsState: SecretsState,
  secretsExpireAt: EpochMs.optional(),
  secretsDeliveredAt: EpochMs.optional(),
};
export const ImportJobSummary = z.object(ImportJobFields).meta({ id: 'ImportJobSummary' });
export const ImportJobList = z.object({ items: z.array(ImportJobSummary) }).meta({ id: 'ImportJobList' });
export const ImportJobResult = z
  .object({ ...ImportJobFields, rejected: z.array(ImportRejection), secrets: ImportSecrets })
  .meta({ id: 'ImportJobResult' });

export const ImportRejectedBody = z
  .object({ error: ErrorBody.shape.error, result: ImportResult })
  .meta({ id: 'ImportRejected', description: 'all-or-nothing with rejected rows: the error and the result' });

// ---- provisioned accounts of a device -----------------------------------------

const Services = z.enum(['mail', 'im']);

export const DeviceAccountBody = z
  .object({
    address: z
      .string()
      .max(320)
      .regex(/^[^\s@]+@[^\s@]+$/, { error: 'an e-mail address' })
      .optional()
      .meta({ description: 'Mail: the e-mail address (required for a mail preset)' }),
    jid: z
      .string()
      .max(3071)
      .regex(/^[^\s@/]+@[^\s@/]+$/, { error: 'a bare JID like user@domain' })
      .optional()
      .meta({ description: 'Chat: the bare JID (required for an IM preset, unless user is one)' }),
    user: z
      .string()
      .min(1)
      .max(320)
      .optional()
      .meta({ description: 'Mail: the login name (default the address). Chat: the JID' }),
    password: z.string().min(1).max(1024).meta({ description: 'Sealed at once; never returned or logged' }),
  })
  .strict()
  .meta({ id: 'DeviceAccountBody' });

export const DeviceAccount = z
  .object({
    label: z.string().meta({ description: "The preset label in the device's service profile" }),
    service: Services,
    user: z.string().meta({ description: 'Mail: the login name. Chat: the bare JID' }),
    address: z.string().optional(),
    createdAt: EpochMs,
    updatedAt: EpochMs,
  })
  .meta({ id: 'DeviceAccount', description: 'A provisioned account; the password is never shown' });

export const PushKind = z.enum(['webpush', 'fcm', 'apns', 'sms']);

export const PushChannel = z
  .object({
    id: z.string().meta({ description: 'The registration id the handset was given (push.registered)' }),
    kind: PushKind,
    registeredAt: EpochMs.meta({ description: "The handset's last push.register of it (epoch ms)" }),
    usedAt: EpochMs.optional().meta({
      description:
        'When a wake-up through it was last noted (epoch ms; noted at most once a day, what its expiry counts from); absent: none since it was registered',
    }),
    channel: z.string().optional().meta({
      description:
        "What names the channel, redacted: a Web Push endpoint's origin, the last 6 characters of an FCM or APNs token (with the APNs topic), a phone number with its middle digits masked",
      example: '…3f9a1c (com.example.mail)',
    }),
  })
  .meta({
    id: 'PushChannel',
    description: 'A wake-up channel of a device; never its keys or whole token (they are credentials)',
  });

export const PushChannelId = z
  .string()
  .regex(/^[a-z][A-Za-z0-9_-]{1,63}$/, { error: 'not a wake-up channel id' })
  .meta({ description: 'A wake-up channel id (as listed)' });

// ---- reference data ---------------------------------------------------------

export const Operator = z
  .object({
    id: RefId,
    name: z.string().min(1).max(200),
    mcc: z
      .string()
      .regex(/^\d{3}$/, { error: '3 digits' })
      .optional(),
    mnc: z
      .string()
      .regex(/^\d{2,3}$/, { error: '2 or 3 digits' })
      .optional(),
    country: z.string().max(64).optional(),
    notes: z.string().max(2000).optional(),
  })
  .strict();

export const OperatorProfile = z
  .object({
    id: RefId,
    operator: RefId,
    name: z.string().min(1).max(200),
    carrier: z
      .enum(['auto', 'ws', 'poll'])
      .optional()
      .meta({ description: 'Preferred carrier for handsets' }),
    heartbeatMs: z.number().int().min(1000).max(3_600_000).optional(),
    maxBytesPerDay: z.number().int().min(0).optional(),
    notes: z.string().max(2000).optional(),
  })
  .strict();

export const Service = z
  .object({
    id: RefId,
    name: z.string().min(1).max(200),
    kind: Services,
    enabled: z.boolean().default(true),
    notes: z.string().max(2000).optional(),
  })
  .strict();

const Host = z.string().regex(/^[A-Za-z0-9.-]{1,253}$/, { error: 'a host name or address' });
const Port = z.number().int().min(1).max(65535);

export const PresetAccount = z
  .object({
    service: Services,
    label: z.string().min(1).max(100),
    imapHost: Host.optional(),
    imapPort: Port.optional(),
    smtpHost: Host.optional(),
    smtpPort: Port.optional(),
    xmppDomain: Host.optional(),
    xmppHost: Host.optional(),
    xmppPort: Port.optional(),
    tls: z.boolean().optional(),
  })
  .strict()
  .meta({ id: 'PresetAccount', description: 'A server preset; never credentials' });

export const ServicePolicies = z
  .object({
    maxAttachmentBytes: z
      .number()
      .int()
      .min(0)
      .max(1 << 30),
    bodyTruncateBytes: z
      .number()
      .int()
      .min(0)
      .max(1 << 26),
    imageQuality: z.number().int().min(1).max(100),
    heartbeatMs: z.number().int().min(1_000).max(300_000).optional().meta({
      description:
        "Ping interval asked of the profile's devices (Welcome heartbeatMs); absent: the edge's (30 s by default). Higher for networks where every wake-up costs; a frozen edge is noticed after 2 of these.",
    }),
    smsWakeups: z.boolean().optional().meta({
      description:
        'Whether devices of this profile may register SMS wake-ups (push.register kind sms, where the gateway has push.sms): the last resort, sent only when no other channel got through. Absent: no.',
    }),
    wakeupPreview: z.enum(WAKEUP_PREVIEWS).optional().meta({
      description:
        "What a wake-up (Web Push, FCM, APNs) shows of the newest mail or chat message: `none` (counts and a placeholder text), `sender` (the mail From's name or address, the chat peer's JID), `sender_subject` (and a mail's subject). Cut to 64 and 120 characters, control characters stripped. Never in an SMS. Absent: none.",
    }),
  })
  .strict()
  .meta({ id: 'ServicePolicies' });

export const ServiceProfile = z
  .object({
    id: RefId,
    name: z.string().min(1).max(200),
    services: z.array(Services).max(2).meta({ description: 'Services a device may use' }),
    accounts: z.array(PresetAccount).max(20).default([]),
    policies: ServicePolicies,
    notes: z.string().max(2000).optional(),
  })
  .strict();

export const Capability = z
  .object({
    id: RefId.meta({ description: 'Device model id' }),
    name: z.string().min(1).max(200),
    tacs: z
      .array(z.string().regex(/^\d{8}$/, { error: 'a TAC is 8 digits' }))
      .max(1000)
      .optional()
      .meta({ description: 'Type Allocation Codes (first 8 IMEI digits) of this model' }),
    screen: z
      .object({
        width: z.number().int().min(1).max(10000),
        height: z.number().int().min(1).max(10000),
        colors: z.number().int().min(1).optional(),
      })
      .strict(),
    formats: z.array(z.enum(['jpeg', 'png', 'gif', 'webp', 'bmp', 'wbmp'])).min(1),
    animates: z.boolean(),
    imageBudgetBytes: z
      .number()
      .int()
      .min(256)
      .max(1 << 26),
    notes: z.string().max(2000).optional(),
  })
  .strict();

export const REF_KINDS = {
  operators: Operator,
  'operator-profiles': OperatorProfile,
  services: Service,
  'service-profiles': ServiceProfile,
  capabilities: Capability,
} as const;
export type RefKind = keyof typeof REF_KINDS;

/** Stored form: the body plus bookkeeping. PUT may send `revision` to refuse a lost update (409). */
export const RefMeta = z.object({
  revision: z.number().int().meta({ description: 'Increases on every change' }),
  createdAt: EpochMs,
  updatedAt: EpochMs,
});
