/**
 * Who the device is to the gateway: the Hello it opens a carrier with (IMEI
 * and secret, or the token of an earlier Welcome; client name; caps), or the
 * Resume of the session it holds, and what each Welcome tells about that
 * session. A Resume answered `session.busy` for too long gives the session
 * up here (handset-session.ts decides when).
 */

import { DEFLATE } from '../compression.ts';
import type { HandsetPlugin } from '../handset-plugin.ts';
import type { HandsetSessionOptions } from '../handset-types.ts';
import {
  type Capabilities,
  type Hello,
  Kind,
  PROTOCOL_VERSION,
  type Resume,
  type Welcome,
} from '../messages.ts';

export type IdentitySettings = Pick<
  HandsetSessionOptions,
  'imei' | 'secret' | 'token' | 'client' | 'caps' | 'plugins' | 'compression'
>;

export class SessionIdentity {
  readonly #settings: IdentitySettings;
  readonly #caps: Capabilities | undefined;
  #sessionId?: string;
  #resumeToken?: string;
  /** When Resumes of this session started being answered session.busy (none welcomed since). */
  #busySince?: number;
  #token?: string;
  #welcome?: Welcome;

  constructor(settings: IdentitySettings) {
    this.#settings = settings;
    this.#token = settings.token;
    this.#caps = helloCaps(settings.caps, settings.plugins, settings.compression !== false);
  }

  get sessionId(): string | undefined {
    return this.#sessionId;
  }

  /** The last Welcome (heartbeat, limits, token). */
  get welcome(): Welcome | undefined {
    return this.#welcome;
  }

  /** The Resume of the session held, acking up to `lastSeq`; undefined when there is none. */
  resume(lastSeq: number): Resume | undefined {
    if (this.#sessionId === undefined || this.#resumeToken === undefined) return undefined;
    return {
      kind: Kind.Resume,
      version: PROTOCOL_VERSION,
      sessionId: this.#sessionId,
      resumeToken: this.#resumeToken,
      lastSeq,
    };
  }

  hello(): Hello {
    const hello: Hello = { kind: Kind.Hello, version: PROTOCOL_VERSION, imei: this.#settings.imei };
    if (this.#settings.secret !== undefined) hello.secret = this.#settings.secret;
    else if (this.#token !== undefined) hello.token = this.#token;
    if (this.#settings.client !== undefined) hello.client = this.#settings.client;
    if (this.#caps !== undefined) hello.caps = this.#caps;
    return hello;
  }

  /** A Welcome: true when it resumed the session held (false: a new one). */
  welcomed(welcome: Welcome): boolean {
    const resumed = welcome.resumed && welcome.sessionId === this.#sessionId;
    this.#sessionId = welcome.sessionId;
    this.#resumeToken = welcome.resumeToken;
    this.#busySince = undefined;
    if (welcome.token) this.#token = welcome.token;
    this.#welcome = welcome;
    return resumed;
  }

  /** The session cannot be resumed: the next carrier says Hello. */
  forget(): void {
    this.#sessionId = undefined;
    this.#resumeToken = undefined;
    this.#busySince = undefined;
  }

  /**
   * A Resume was answered session.busy at `now`: true when Resumes of this
   * session have been busy for `limitMs` or longer (none welcomed since).
   */
  busyFor(now: number, limitMs: number): boolean {
    this.#busySince ??= now;
    return now - this.#busySince >= limitMs;
  }
}

/** Hello caps: the application's, each plugin's, and deflate unless compression is off. */
function helloCaps(
  caps: Capabilities | undefined,
  plugins: readonly HandsetPlugin[],
  compression: boolean,
): Capabilities | undefined {
  for (const plugin of plugins) if (plugin.caps) caps = withCaps(caps, plugin.caps);
  if (compression) caps = withCaps(caps, { compression: [DEFLATE] });
  return caps;
}

/** `caps` with `extra` added: lists joined without repeats, other fields only where unset. */
export function withCaps(caps: Capabilities | undefined, extra: Capabilities): Capabilities | undefined {
  let out = caps as Record<string, unknown> | undefined;
  for (const [key, add] of Object.entries(extra) as Array<[string, unknown]>) {
    if (add === undefined) continue;
    const have = out?.[key];
    if (Array.isArray(add)) {
      const list: unknown[] = Array.isArray(have) ? have : [];
      const missing = add.filter((x) => !list.includes(x));
      if (missing.length > 0) out = { ...out, [key]: [...list, ...missing] };
    } else if (have === undefined) {
      out = { ...out, [key]: add };
    }
  }
  return out as Capabilities | undefined;
}
