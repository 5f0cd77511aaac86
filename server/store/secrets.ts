import * as crypto from 'node:crypto';
import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * Device secrets and admin passwords.
 *
 * A device secret is 32 random bytes: 256 bits of entropy cannot be guessed or
 * brute-forced offline, so one SHA-256 is the right hash for it. A slow KDF
 * (scrypt) would add nothing against guessing and would cap device
 * authentication at a few dozen per second per core, which a reconnect storm
 * of 100k handsets cannot afford.
 *
 * Admin passwords are chosen by people, hence low-entropy: they get scrypt with
 * a random salt, and the parameters are stored with the hash so that they can
 * be raised later without breaking old hashes.
 */

export function generateDeviceSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function hashDeviceSecret(secret: string): string {
  // The one-shot form makes no Hash object: an import hashes a secret per row.
  // (crypto.hash is Node 20.12 and later.)
  if (typeof crypto.hash === 'function') return crypto.hash('sha256', secret, 'base64url');
  return createHash('sha256').update(secret, 'utf8').digest('base64url');
}

/** Constant-time comparison of a presented secret with a stored hash. */
export function verifyDeviceSecret(secret: string, storedHash: string): boolean {
  const presented = createHash('sha256').update(secret, 'utf8').digest();
  const stored = Buffer.from(storedHash, 'base64url');
  return stored.length === presented.length && timingSafeEqual(presented, stored);
}

/** scrypt parameters: N=2^15, r=8, p=1 costs ~32 MiB and ~50 ms (OWASP's minimum is N=2^17 with r=8 for ~100 ms). */
const SCRYPT = { N: 32768, r: 8, p: 1, keyLen: 32, saltLen: 16 };

function scryptAsync(password: string, salt: Buffer, N: number, r: number, p: number, keyLen: number) {
  return new Promise<Buffer>((resolve, reject) => {
    scrypt(password, salt, keyLen, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

/** Admin passwords: 10 characters at least (anything shorter falls to a dictionary), 1024 at most (scrypt's input). */
export const ADMIN_PASSWORD_LENGTH = { min: 10, max: 1024 } as const;

/** What is wrong with an admin password, in words for its owner; undefined when nothing is. */
export function adminPasswordProblem(password: string): string | undefined {
  if (password.length < ADMIN_PASSWORD_LENGTH.min) return `at least ${ADMIN_PASSWORD_LENGTH.min} characters`;
  if (password.length > ADMIN_PASSWORD_LENGTH.max) return `at most ${ADMIN_PASSWORD_LENGTH.max} characters`;
  return undefined;
}

/** `scrypt$N$r$p$salt$hash` with salt and hash in base64url. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SCRYPT.saltLen);
  const key = await scryptAsync(password, salt, SCRYPT.N, SCRYPT.r, SCRYPT.p, SCRYPT.keyLen);
  return ['scrypt', SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString('base64url'), key.toString('base64url')].join(
    '$',
  );
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N = 0, r = 0, p = 0] = parts.slice(1, 4).map(Number);
  // Exactly six parts, checked above.
  const salt = Buffer.from(parts[4]!, 'base64url');
  const expected = Buffer.from(parts[5]!, 'base64url');
  if (![N, r, p].every((x) => Number.isInteger(x) && x > 0) || expected.length === 0) return false;
  const key = await scryptAsync(password, salt, N, r, p, expected.length);
  return timingSafeEqual(key, expected);
}
