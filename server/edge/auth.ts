/**
 * Device authentication at Hello (SPEC.md §5): IMEI + secret through the
 * directory, or a still-valid JWT from an earlier Welcome. Tokens are HS256
 * only (the algorithm is pinned on verify, so a token cannot pick its own),
 * carry sub = IMEI and sid = the session id, and expire.
 */
import { type KeyObject, createSecretKey, randomBytes, timingSafeEqual } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Hello } from '../../device-protocol/messages.ts';
import type { DeviceDirectory, DeviceInfo } from '../bus/bus.ts';

export const DEFAULT_TOKEN_TTL_SEC = 3600;

/**
 * What the edge accepts as an IMEI before asking the directory: it becomes a
 * bus subject token and a map key, so it must not carry dots, wildcards or
 * whitespace. (The registry checks the real format and the Luhn digit.)
 */
const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function isDeviceId(imei: unknown): imei is string {
  return typeof imei === 'string' && DEVICE_ID.test(imei);
}

export class DeviceTokens {
  /**
   * A KeyObject, made once: handed a string, jsonwebtoken builds a key object
   * and re-validates it on every call, ~0.4 ms per sign or verify against
   * ~6 µs with a ready key (test/bench/RESULTS.md, Edge). That was most of
   * the CPU one connect + authenticate costs.
   */
  private readonly key: KeyObject;

  constructor(
    secret: string,
    private readonly ttlSec: number,
    private readonly now: () => number,
  ) {
    if (typeof secret !== 'string' || secret.length < 16) {
      throw new GatewayError('config.invalid', 'The edge JWT secret must be at least 16 characters.', {
        field: 'jwtSecret',
      });
    }
    this.key = createSecretKey(Buffer.from(secret, 'utf8'));
  }

  issue(imei: string, sessionId: string, keyEpoch?: string): { token: string; expiresAt: number } {
    const iat = Math.floor(this.now() / 1000);
    const exp = iat + this.ttlSec;
    const claims = {
      sub: imei,
      sid: sessionId,
      iat,
      exp,
      ...(keyEpoch === undefined ? {} : { kep: keyEpoch }),
    };
    const token = jwt.sign(claims, this.key, { algorithm: 'HS256' });
    return { token, expiresAt: exp * 1000 };
  }

  /** The token's key epoch (absent in tokens of older releases). Throws GatewayError auth.token_expired or auth.bad_token. */
  verify(token: string, imei: string): string | undefined {
    let payload: unknown;
    try {
      payload = jwt.verify(token, this.key, {
        algorithms: ['HS256'],
        clockTimestamp: Math.floor(this.now() / 1000),
      });
    } catch (err) {
      if ((err as Error)?.name === 'TokenExpiredError') {
        throw new GatewayError('auth.token_expired', undefined, { cause: err });
      }
      throw new GatewayError('auth.bad_token', undefined, { cause: err });
    }
    const claims = payload as { sub?: unknown; exp?: unknown; kep?: unknown };
    if (
      typeof claims !== 'object' ||
      claims === null ||
      claims.sub !== imei ||
      typeof claims.exp !== 'number'
    ) {
      throw new GatewayError('auth.bad_token', 'The token was not issued to this device.');
    }
    return typeof claims.kep === 'string' ? claims.kep : undefined;
  }
}

/** Checks a Hello against the directory (secret) or the token; throws GatewayError auth.*. */
export async function authenticateHello(
  hello: Hello,
  directory: DeviceDirectory,
  tokens: DeviceTokens,
): Promise<DeviceInfo> {
  if (!isDeviceId(hello.imei)) throw new GatewayError('auth.unknown_device', 'The IMEI is malformed.');
  if (hello.token !== undefined) {
    const kep = tokens.verify(hello.token, hello.imei);
    const info = await directory.lookup(hello.imei);
    // A token issued under an older secret (the operator gave the device a new one) is dead.
    if (kep !== undefined && info.keyEpoch !== undefined && kep !== info.keyEpoch) {
      throw new GatewayError('auth.bad_token', 'The device secret changed since this token was issued.');
    }
    return info;
  }
  if (hello.secret !== undefined) return directory.authenticate(hello.imei, hello.secret);
  throw new GatewayError('auth.bad_secret', 'Hello needs a secret or a token.');
}

/** 128 random bits, base64url (22 characters). */
export function newResumeToken(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * Session ids name their device (`<imei>.<72 random bits>`), so that an edge
 * that does not know a session can still find the edge that does: the claim
 * goes to the device's bus subject. The resume token, not the id, is the secret.
 */
export function newSessionId(imei: string): string {
  return `${imei}.${randomBytes(9).toString('base64url')}`;
}

export function imeiOfSessionId(sessionId: unknown): string | undefined {
  if (typeof sessionId !== 'string' || sessionId.length > 100) return undefined;
  const dot = sessionId.lastIndexOf('.');
  if (dot <= 0) return undefined;
  const imei = sessionId.slice(0, dot);
  return isDeviceId(imei) ? imei : undefined;
}

export function sameSecret(a: string, b: string): boolean {
  if (typeof a !== 'string' || typeof b !== 'string') return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
