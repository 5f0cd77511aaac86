/**
 * The config of the FCM, APNs and SMS channels (sections `push.fcm`,
 * `push.apns` and `push.sms` of server/config.ts), and the FCM and APNs
 * credentials read from the files the config names. A channel is enabled only where its section is given;
 * a missing or malformed credential file stops the start (config.invalid,
 * naming the key and the field), never a wake-up.
 */
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { GatewayError } from '../../../device-protocol/errors.ts';

const httpsUrl = (what: string) =>
  z.url({ protocol: /^https$/, error: `expected an https:// URL (${what})` });

export const fcmSettings = z
  .object({
    /** Path of the service account's JSON key file (Firebase console → Service accounts). */
    serviceAccountFile: z.string({ error: 'expected a file path' }).min(1),
    /** The FCM HTTP v1 origin. Default https://fcm.googleapis.com (another for tests). */
    endpoint: httpsUrl('the FCM API origin').optional(),
  })
  .strict();

export const APNS_HOSTS = {
  production: 'https://api.push.apple.com',
  sandbox: 'https://api.sandbox.push.apple.com',
} as const;

export const apnsSettings = z
  .object({
    /** The 10-character id of the .p8 key (Apple Developer → Keys). */
    keyId: z
      .string({ error: 'expected a string' })
      .regex(/^[A-Z0-9]{10}$/, { error: 'expected 10 letters or digits' }),
    /** The 10-character team id the key belongs to. */
    teamId: z
      .string({ error: 'expected a string' })
      .regex(/^[A-Z0-9]{10}$/, { error: 'expected 10 letters or digits' }),
    /** Path of the .p8 key file (PKCS#8 PEM, P-256). */
    keyFile: z.string({ error: 'expected a file path' }).min(1),
    /** production (default), sandbox (development builds), or an https:// origin (tests). */
    host: z
      .union([z.enum(['production', 'sandbox']), httpsUrl('production, sandbox or an origin')])
      .optional(),
    /**
     * background (default): a silent push (content-available) that wakes the app; alert: a visible
     * notification with the placeholder text, for apps that are not woken by background pushes.
     */
    pushType: z.enum(['background', 'alert'], { error: 'expected background or alert' }).optional(),
  })
  .strict();

/** A number such as an SMSC takes it: digits only for an international one, else up to 11 GSM letters. */
const SOURCE_ADDRESS = /^(?:\+?[0-9]{1,15}|[A-Za-z0-9 ]{1,11})$/;

const perHour = (fallback: number) =>
  z.number({ error: 'expected a whole number' }).int().min(0).max(1_000_000).default(fallback);

export const DEFAULT_SMS_PER_DEVICE_PER_HOUR = 4;
export const DEFAULT_SMS_PER_OPERATOR_PER_HOUR = 1000;

export const smsSettings = z
  .object({
    /** The SMSC (SMPP 3.4 over TCP); it obeys the outbound destination policy like every other peer. */
    host: z.string({ error: 'expected a host name or address' }).min(1).max(253),
    /** Default 2775, SMPP's port. */
    port: z.number({ error: 'expected a port' }).int().min(1).max(65_535).default(2775),
    /** The ESME's system_id and password of bind_transmitter (SMPP: at most 15 and 8 characters). */
    systemId: z.string({ error: 'expected a string' }).min(1).max(15),
    password: z.string({ error: 'expected a string' }).max(8),
    /** The sender shown on the phone: an international number (`+4915…`) or an alphanumeric name. */
    sourceAddress: z
      .string({ error: 'expected a string' })
      .regex(SOURCE_ADDRESS, { error: 'expected a number of up to 15 digits or up to 11 letters' }),
    /** SMS per device per hour, counted cluster-wide in a cluster (default 4). */
    perDevicePerHour: perHour(DEFAULT_SMS_PER_DEVICE_PER_HOUR),
    /** SMS per operator per hour, counted cluster-wide in a cluster (default 1000). */
    perOperatorPerHour: perHour(DEFAULT_SMS_PER_OPERATOR_PER_HOUR),
  })
  .strict();

export type SmsSettings = z.output<typeof smsSettings>;

/** The `push` section as it may be logged: the VAPID private key and the SMPP password replaced. */
export function redactedPush<
  P extends { vapid?: { privateKey: string } | undefined; sms?: SmsSettings | undefined },
>(push: P): P {
  return {
    ...push,
    ...(push.vapid ? { vapid: { ...push.vapid, privateKey: '[redacted]' } } : {}),
    ...(push.sms ? { sms: { ...push.sms, password: '[redacted]' } } : {}),
  };
}

export type FcmSettings = z.output<typeof fcmSettings>;
export type ApnsSettings = z.output<typeof apnsSettings>;

/** What a Google service-account key file holds that the FCM sender uses (other fields are ignored). */
const serviceAccountFile = z.object({
  project_id: z.string().regex(/^[a-z][a-z0-9-]{4,61}[a-z0-9]$/, { error: 'expected a project id' }),
  client_email: z.email(),
  private_key: z.string().max(16_384).includes('PRIVATE KEY', { error: 'expected a PEM private key' }),
  private_key_id: z.string().max(128).optional(),
  token_uri: httpsUrl('the OAuth2 token endpoint'),
});

export type ServiceAccount = z.output<typeof serviceAccountFile>;

function invalid(key: string, why: string): GatewayError {
  return new GatewayError('config.invalid', `config: ${key}: ${why}`);
}

function readText(key: string, file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw invalid(
      key,
      `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

/** The service account of `push.fcm.serviceAccountFile`, checked; its private key is an RSA key. */
export function loadServiceAccount(file: string): ServiceAccount {
  const key = 'push.fcm.serviceAccountFile';
  let json: unknown;
  try {
    json = JSON.parse(readText(key, file));
  } catch (err) {
    if (err instanceof GatewayError) throw err;
    throw invalid(key, `${file} is not JSON`);
  }
  const parsed = serviceAccountFile.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw invalid(key, `${file}: ${issue.path.join('.') || 'the file'}: ${issue.message}`);
  }
  try {
    if (createPrivateKey(parsed.data.private_key).asymmetricKeyType !== 'rsa') throw new Error('not RSA');
  } catch {
    throw invalid(key, `${file}: private_key: expected an RSA private key in PEM`);
  }
  return parsed.data;
}

/** The PEM text of `push.apns.keyFile`, checked to be a P-256 private key (what ES256 signs with). */
export function loadApnsKey(file: string): string {
  const key = 'push.apns.keyFile';
  const pem = readText(key, file);
  try {
    const k = createPrivateKey(pem);
    if (k.asymmetricKeyType !== 'ec' || k.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
      throw new Error();
  } catch {
    throw invalid(key, `${file}: expected a P-256 private key in PEM (the .p8 file)`);
  }
  return pem;
}
