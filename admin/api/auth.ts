/**
 * Admin API authentication: bearer JWTs (HS256 only, with expiry) signed with
 * a key of their own (`<data>/keys/admin-jwt.key`, never the device token
 * key), login rate limits, and the first admin from the environment.
 */
import { type KeyObject, createSecretKey, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import jwt from 'jsonwebtoken';
import type { Logger } from 'pino';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { AdminRole } from '../../server/store/records.ts';
import type { Registry } from '../../server/store/registry.ts';

export interface Principal {
  name: string;
  role: AdminRole;
}

/** Reads or creates (32 random bytes, mode 0600) the admin token key. */
export function adminJwtKey(dataDir: string): string {
  const path = join(dataDir, 'keys', 'admin-jwt.key');
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    writeFileSync(path, randomBytes(32).toString('base64url') + '\n', { flag: 'wx', mode: 0o600 });
    chmodSync(path, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return readFileSync(path, 'utf8').trim();
}

const ISSUER = 'mmgw-admin';

export class TokenIssuer {
  /** Made once; a string key costs jsonwebtoken ~0.4 ms per call (see server/edge/auth.ts). */
  private readonly key: KeyObject;

  constructor(
    key: string,
    private readonly ttlSeconds: number,
    private readonly now: () => number = Date.now,
  ) {
    this.key = createSecretKey(Buffer.from(key, 'utf8'));
  }

  issue(p: Principal): { token: string; expiresAt: number } {
    const iat = Math.floor(this.now() / 1000);
    const exp = iat + this.ttlSeconds;
    const token = jwt.sign({ sub: p.name, role: p.role, iat, exp }, this.key, {
      algorithm: 'HS256',
      issuer: ISSUER,
      noTimestamp: true,
    });
    return { token, expiresAt: exp * 1000 };
  }

  /** The token's subject; throws api.unauthorized or auth.token_expired. */
  verify(token: string): { name: string } {
    try {
      const claims = jwt.verify(token, this.key, {
        algorithms: ['HS256'],
        issuer: ISSUER,
        clockTimestamp: Math.floor(this.now() / 1000),
      }) as jwt.JwtPayload;
      if (typeof claims.sub !== 'string') throw new Error('no subject');
      return { name: claims.sub };
    } catch (err) {
      if (err instanceof jwt.TokenExpiredError)
        throw new GatewayError('auth.token_expired', 'the token has expired: log in again');
      throw new GatewayError('api.unauthorized', 'the token is malformed or its signature is wrong');
    }
  }
}

/**
 * The caller of a request: the bearer token of the Authorization header (or
 * `?access_token=`, the form EventSource and plain links can send), checked
 * against the registry on every request, so that a removed user's tokens stop
 * working at once and a changed role applies at once.
 */
export function bearerPrincipal(
  req: IncomingMessage,
  url: URL,
  tokens: TokenIssuer,
  registry: Registry,
): Principal {
  const header = req.headers.authorization;
  let token: string | undefined;
  if (typeof header === 'string' && /^Bearer\s+/i.test(header))
    token = header.replace(/^Bearer\s+/i, '').trim();
  token ??= url.searchParams.get('access_token') ?? undefined;
  if (!token) throw new GatewayError('api.unauthorized', 'log in and send Authorization: Bearer <token>');
  const { name } = tokens.verify(token);
  const user = registry.getAdminUser(name);
  if (!user) throw new GatewayError('api.unauthorized', 'the user of this token no longer exists');
  return { name: user.name, role: user.role };
}

/**
 * Sliding-window counters of failed logins: per user name (a password
 * guesser cannot try more than `perUser` times per window) and per client
 * address (one address cannot spray many names). Successful logins do not
 * count, so a busy operator desk behind one address is not locked out.
 */
export class LoginLimiter {
  private readonly byUser = new Map<string, number[]>();
  private readonly byAddress = new Map<string, number[]>();

  constructor(
    private readonly limits: { perUser: number; perAddress: number; windowMs: number } = {
      perUser: 5,
      perAddress: 30,
      windowMs: 15 * 60_000,
    },
    private readonly now: () => number = Date.now,
  ) {}

  private recent(map: Map<string, number[]>, key: string): number[] {
    const cutoff = this.now() - this.limits.windowMs;
    const list = (map.get(key) ?? []).filter((t) => t > cutoff);
    if (list.length === 0) map.delete(key);
    else map.set(key, list);
    // Bound memory: forget the oldest keys when someone sprays names.
    if (map.size > 100_000) map.delete(map.keys().next().value as string);
    return list;
  }

  /** Throws auth.rate_limited when either limit of failures is reached. */
  check(name: string, address: string): void {
    const user = this.recent(this.byUser, name);
    const addr = this.recent(this.byAddress, address);
    const blocked =
      user.length >= this.limits.perUser ? user : addr.length >= this.limits.perAddress ? addr : undefined;
    const oldest = blocked?.[0];
    if (oldest !== undefined) {
      const retryAfterMs = Math.max(1000, oldest + this.limits.windowMs - this.now());
      throw new GatewayError('auth.rate_limited', 'too many login attempts: wait before trying again', {
        retryable: true,
        retryAfterMs,
      });
    }
  }

  failed(name: string, address: string): void {
    for (const [map, key] of [
      [this.byUser, name],
      [this.byAddress, address],
    ] as const) {
      const list = this.recent(map, key);
      list.push(this.now());
      map.set(key, list);
    }
  }

  succeeded(name: string): void {
    this.byUser.delete(name);
  }
}

/**
 * On first start, when no admin-role user exists, creates one from
 * MMGW_ADMIN_NAME / MMGW_ADMIN_PASSWORD (nothing happens without both).
 */
export async function bootstrapAdmin(
  registry: Registry,
  env: Record<string, string | undefined>,
  logger: Logger,
): Promise<void> {
  const name = env.MMGW_ADMIN_NAME;
  const password = env.MMGW_ADMIN_PASSWORD;
  if (!name || !password) return;
  if (registry.listAdminUsers().some((u) => u.role === 'admin')) return;
  try {
    await registry.addAdminUser({ name, role: 'admin', password });
    logger.info({ name }, 'first admin user created from MMGW_ADMIN_NAME');
  } catch (err) {
    // Another admin node may have created it at the same moment.
    if ((err as GatewayError).code === 'registry.duplicate') return;
    logger.error({ err, name }, 'could not create the first admin from the environment');
  }
}
