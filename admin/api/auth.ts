/**
 * Admin API authentication: bearer JWTs (HS256 only, with expiry) signed with
 * a key of their own (`<data>/keys/admin-jwt.key`, never the device token
 * key), login rate limits, and the first admin from the environment.
 *
 * A token carries its user's token epoch (`ep`), which the registry moves on
 * at every password or role change: from then on the user's older tokens are
 * refused. Tokens travel only in the Authorization header, never in a URL
 * (where logs, proxies and browser history keep them): a Server-Sent Events
 * stream, which EventSource opens without headers, takes a stream ticket
 * instead, asked for with the token, good for one use within 30 s and for
 * the one stream path it names.
 */
import { createSecretKey, type KeyObject, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import jwt from 'jsonwebtoken';
import type { Logger } from 'pino';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { AdminRole, Registry } from '../../server/index.ts';

export interface Principal {
  name: string;
  role: AdminRole;
  /** The user's token epoch when the request was checked (0 on a public route). */
  epoch?: number;
}

/** How long a stream ticket can be used. */
export const TICKET_TTL_SECONDS = 30;

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

  /** Stream tickets already used (jti → expiry in seconds), until they would have expired anyway. */
  private readonly usedTickets = new Map<string, number>();

  /** A login token of the user, in their current token epoch. */
  issue(p: Principal, epoch: number): { token: string; expiresAt: number } {
    const iat = Math.floor(this.now() / 1000);
    const exp = iat + this.ttlSeconds;
    const token = jwt.sign({ sub: p.name, role: p.role, ep: epoch, iat, exp }, this.key, {
      algorithm: 'HS256',
      issuer: ISSUER,
      audience: AUDIENCE_API,
      noTimestamp: true,
    });
    return { token, expiresAt: exp * 1000 };
  }

  /** The token's subject and epoch; throws api.unauthorized or auth.token_expired. */
  verify(token: string): { name: string; epoch: number } {
    // A ticket is not a login token (nor the other way round): each names its audience.
    const { name, epoch } = this.check(token, AUDIENCE_API);
    return { name, epoch };
  }

  /** A single-use ticket for one stream path, good for TICKET_TTL_SECONDS. */
  issueTicket(name: string, epoch: number, path: string): { ticket: string; expiresAt: number } {
    const iat = Math.floor(this.now() / 1000);
    const exp = iat + TICKET_TTL_SECONDS;
    const ticket = jwt.sign({ sub: name, ep: epoch, path, iat, exp }, this.key, {
      algorithm: 'HS256',
      issuer: ISSUER,
      audience: AUDIENCE_STREAM,
      jwtid: randomBytes(12).toString('base64url'),
      noTimestamp: true,
    });
    return { ticket, expiresAt: exp * 1000 };
  }

  /**
   * The subject and epoch of a ticket for this path, which is used up by
   * this call; throws api.unauthorized when it is not good (any more).
   */
  redeemTicket(ticket: string, path: string): { name: string; epoch: number } {
    const claims = this.check(ticket, AUDIENCE_STREAM);
    const nowSeconds = Math.floor(this.now() / 1000);
    for (const [jti, exp] of this.usedTickets) if (exp < nowSeconds) this.usedTickets.delete(jti);
    if (claims.path !== path)
      throw new GatewayError('api.unauthorized', 'the stream ticket is for another stream');
    if (!claims.jti || this.usedTickets.has(claims.jti))
      throw new GatewayError('api.unauthorized', 'the stream ticket was used already: ask for another');
    this.usedTickets.set(claims.jti, claims.exp);
    return { name: claims.name, epoch: claims.epoch };
  }

  private check(
    token: string,
    audience: string,
  ): { name: string; epoch: number; path?: string; jti?: string; exp: number } {
    let claims: jwt.JwtPayload;
    try {
      claims = jwt.verify(token, this.key, {
        algorithms: ['HS256'],
        issuer: ISSUER,
        clockTimestamp: Math.floor(this.now() / 1000),
      }) as jwt.JwtPayload;
    } catch (err) {
      if (err instanceof jwt.TokenExpiredError)
        throw new GatewayError(
          'auth.token_expired',
          audience === AUDIENCE_STREAM
            ? 'the stream ticket has expired: ask for another'
            : 'the token has expired: log in again',
        );
      throw new GatewayError('api.unauthorized', 'the token is malformed or its signature is wrong');
    }
    // Tokens from before audiences were named are login tokens.
    const aud = claims.aud ?? AUDIENCE_API;
    if (aud !== audience || typeof claims.sub !== 'string')
      throw new GatewayError(
        'api.unauthorized',
        audience === AUDIENCE_STREAM ? 'not a stream ticket' : 'a stream ticket is not a login token',
      );
    return {
      name: claims.sub,
      epoch: typeof claims.ep === 'number' ? claims.ep : 0,
      ...(typeof claims.path === 'string' ? { path: claims.path } : {}),
      ...(typeof claims.jti === 'string' ? { jti: claims.jti } : {}),
      exp: claims.exp ?? 0,
    };
  }
}

const AUDIENCE_API = 'mmgw-admin-api';
const AUDIENCE_STREAM = 'mmgw-admin-stream';

/**
 * The caller of a request: the bearer token of the Authorization header,
 * checked against the registry on every request, so that a removed user's
 * tokens stop working at once, and so do the tokens issued before their
 * password or role changed. On a stream route, `?ticket=` (a stream ticket
 * for that path) may stand in for the header.
 */
export function bearerPrincipal(
  req: IncomingMessage,
  url: URL,
  tokens: TokenIssuer,
  registry: Registry,
  o: { ticketPath?: string } = {},
): Principal {
  const header = req.headers.authorization;
  let claims: { name: string; epoch: number };
  const ticket = o.ticketPath === undefined ? null : url.searchParams.get('ticket');
  if (typeof header === 'string' && /^Bearer\s+/i.test(header))
    claims = tokens.verify(header.replace(/^Bearer\s+/i, '').trim());
  else if (ticket && o.ticketPath !== undefined) claims = tokens.redeemTicket(ticket, o.ticketPath);
  else throw new GatewayError('api.unauthorized', 'log in and send Authorization: Bearer <token>');
  const auth = registry.getAdminAuth(claims.name);
  if (!auth) throw new GatewayError('api.unauthorized', 'the user of this token no longer exists');
  if (auth.tokenEpoch !== claims.epoch)
    throw new GatewayError(
      'api.unauthorized',
      'the token was issued before a password or role change: log in again',
    );
  return { name: auth.user.name, role: auth.user.role, epoch: auth.tokenEpoch };
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
