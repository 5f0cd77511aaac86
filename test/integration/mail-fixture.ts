/**
 * Shared setup of the mail integration tests: a private Dovecot, the SMTP peer
 * delivering into it, a mail service on a temp data dir, and a way to call
 * the MethodDefinitions as the transport role would (validate, then handle)
 * with a real MethodContext whose push() records events.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { Value } from '../../device-protocol/messages.ts';
import { InProcessBus } from '../../server/bus/index.ts';
import {
  type MailService,
  type MailUsageRecord,
  openMailService,
} from '../../server/transport/mail/index.ts';
import { parseMethodInput } from '../../server/transport/index.ts';
import { TransportStorage } from '../../server/transport/kit/transport-storage.ts';
import { WatchMarks } from '../../server/transport/mail/watch-marks.ts';
import type { MethodContext } from '../../server/transport/types.ts';
import type { Handset } from '../../device-protocol/handset.ts';
import { type DovecotOptions, type DovecotServer, startDovecot } from '../harness/dovecot.ts';
import { type Gateway, type GatewayOptions, provisionDevice, startGateway } from '../harness/gateway.ts';
import { type SmtpPeer, startSmtpPeer } from '../harness/smtp-peer.ts';
import { type EventuallyOptions, eventually } from '../../testing/index.ts';
import { handsetFor } from './e2e-suite.ts';

/** What the fixture's mail service may reach: the loopback peers (a test can pass its own `transport`). */
export const LOOPBACK_DESTINATIONS = ['127.0.0.0/8', '::1'];

/** The key the fixture's mail service seals passwords with (a child process on its data dir needs it). */
export const FIXTURE_CREDENTIALS_KEY = Buffer.alloc(32, 7).toString('base64');

export const ALICE = { user: 'alice@example.test', password: 'alice-pw' };
export const BOB = { user: 'bob@example.test', password: 'bob-pw' };

/** A `mail.account.add` body for `user` on this Dovecot and SMTP peer (plain IMAP, STARTTLS to the peer). */
export function mailAccountBody(
  dovecot: Pick<DovecotServer, 'host' | 'imapPort'>,
  smtp: Pick<SmtpPeer, 'host' | 'port'>,
  user: { user: string; password: string },
  overrides: object = {},
): { [key: string]: Value } {
  // A Value as the Handset sends it; overrides may also put in what no Value is (the tests of bad input).
  return {
    address: user.user,
    imap: {
      host: dovecot.host,
      port: dovecot.imapPort,
      tls: 'none',
      user: user.user,
      password: user.password,
    },
    smtp: {
      host: smtp.host,
      port: smtp.port,
      tls: 'starttls',
      allowInvalidCert: true,
      user: user.user,
      password: user.password,
    },
    ...overrides,
  } as { [key: string]: Value };
}

export interface MailFixture {
  dovecot: DovecotServer;
  smtp: SmtpPeer;
  dataDir: string;
  service: MailService;
  pushed: { deviceId: string; name: string; body: Value | undefined }[];
  /** Every usage record the service reported. */
  usage: MailUsageRecord[];
  /** Devices whose push() rejects with bus.no_responders (no session). */
  offline: Set<string>;
  /** Devices whose push() rejects with bus.timeout (the bus is down; the session may be fine). */
  busDown: Set<string>;
  call(deviceId: string, method: string, body: unknown, extra?: Partial<MethodContext>): Promise<any>;
  /** Calls and expects a GatewayError; returns it. */
  callError(deviceId: string, method: string, body: unknown): Promise<GatewayError>;
  accountBody(
    user: { user: string; password: string },
    overrides?: Record<string, unknown>,
  ): Record<string, unknown>;
  addAccount(deviceId: string, user: { user: string; password: string }): Promise<string>;
  /** Stops Dovecot, runs `whileDown`, and starts it again on the same port and mail dir. */
  restartDovecot(whileDown?: () => Promise<void>): Promise<void>;
  /** Reopens the mail service on the same data dir (a gateway restart). */
  restartService(): Promise<void>;
  stop(): Promise<void>;
}

export async function startMailFixture(
  opts: {
    maxSize?: number;
    capabilities?: string[];
    serviceOptions?: Partial<Parameters<typeof openMailService>[0]>;
    /** More Dovecot options (e.g. pushHook), also on restart. */
    dovecotOptions?: Partial<DovecotOptions>;
  } = {},
): Promise<MailFixture> {
  const dovecot = await startDovecot({
    users: [ALICE, BOB],
    capabilities: opts.capabilities,
    ...opts.dovecotOptions,
  });
  const stops: (() => Promise<void>)[] = [() => current.stop({ removeDir: true })];
  let current = dovecot;
  try {
    const smtp = await startSmtpPeer({ dovecot, maxSize: opts.maxSize });
    stops.unshift(() => smtp.stop());
    const dataDir = mkdtempSync(join(tmpdir(), 'mmgw-mail-'));
    stops.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const logger = pino({ level: process.env.MMGW_LOG_LEVEL ?? 'silent' });
    const bus = new InProcessBus();
    const credentialsKey = FIXTURE_CREDENTIALS_KEY;
    const usage: MailUsageRecord[] = [];
    const open = () =>
      openMailService({
        dataDir,
        logger,
        credentialsKey,
        lingerMs: 60_000,
        connectTimeoutMs: 5000,
        onUsage: (r) => usage.push(r),
        // The peers are on loopback, which the outbound policy refuses unless opened.
        transport: { allowDestinations: LOOPBACK_DESTINATIONS },
        ...opts.serviceOptions,
      });
    let service = open();
    const pushed: MailFixture['pushed'] = [];
    const offline = new Set<string>();
    const busDown = new Set<string>();
    let seq = 0;
    const ctxFor = (deviceId: string, requestId: string): MethodContext => ({
      deviceId,
      sessionId: `s-${deviceId}`,
      requestId,
      bus,
      logger,
      dataDir,
      now: () => Date.now(),
      push: async (name, body) => {
        if (offline.has(deviceId)) throw new GatewayError('bus.no_responders');
        if (busDown.has(deviceId)) throw new GatewayError('bus.timeout');
        pushed.push({ deviceId, name, body });
        return ++seq;
      },
    });
    let req = 0;
    const call = async (
      deviceId: string,
      method: string,
      body: unknown,
      extra: Partial<MethodContext> = {},
    ): Promise<any> => {
      const def = fixture.service.methods.find((m) => m.method === method);
      if (!def) throw new Error(`no method ${method}`);
      const input = parseMethodInput(def, body);
      return def.handle({ ...ctxFor(deviceId, `r${++req}`), ...extra }, input);
    };
    const fixture: MailFixture = {
      dovecot,
      smtp,
      dataDir,
      service,
      pushed,
      usage,
      offline,
      busDown,
      call,
      async callError(deviceId, method, body) {
        try {
          await call(deviceId, method, body);
        } catch (err) {
          if (err instanceof GatewayError) return err;
          throw err;
        }
        throw new Error(`${method} succeeded but an error was expected`);
      },
      accountBody(user, overrides = {}) {
        return mailAccountBody(dovecot, smtp, user, overrides);
      },
      async addAccount(deviceId, user) {
        const res = await call(deviceId, 'mail.account.add', fixture.accountBody(user));
        return res.account as string;
      },
      async restartDovecot(whileDown) {
        await current.stop();
        try {
          await whileDown?.();
        } finally {
          current = await startDovecot({
            users: [ALICE, BOB],
            dir: current.dir,
            port: current.imapPort,
            capabilities: opts.capabilities,
            ...opts.dovecotOptions,
          });
          fixture.dovecot = current;
        }
      },
      async restartService() {
        await fixture.service.close();
        service = open();
        fixture.service = service;
      },
      async stop() {
        await fixture.service.close().catch(() => {});
        for (const s of stops) await s().catch(() => {});
      },
    };
    stops.unshift(() => bus.close());
    return fixture;
  } catch (err) {
    for (const s of stops) await s().catch(() => {});
    throw err;
  }
}

export interface MailGatewayRig {
  dovecot: DovecotServer;
  smtp: SmtpPeer;
  gw: Gateway;
  dataDir: string;
  /** A provisioned device's connected Handset (closed by stop()). */
  device(): Promise<Handset>;
  stop(): Promise<void>;
}

/**
 * A real gateway process (every role, dist/) with a private Dovecot and the
 * SMTP peer, for tests that go device → edge → transport → mail server.
 * `beforeGateway` runs once the peers are up (e.g. to lower their priority).
 */
export async function startMailGatewayRig(
  opts: { beforeGateway?: (dovecot: DovecotServer) => void; gateway?: GatewayOptions } = {},
): Promise<MailGatewayRig> {
  const open: Handset[] = [];
  const dovecot = await startDovecot({ users: [ALICE, BOB] });
  let smtp: SmtpPeer | undefined;
  let gw: Gateway | undefined;
  const dataDir = mkdtempSync(join(tmpdir(), 'mmgw-mail-rig-'));
  const stop = async () => {
    for (const h of open) await h.close().catch(() => {});
    await gw?.stop();
    await smtp?.stop();
    await dovecot.stop({ removeDir: true });
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    opts.beforeGateway?.(dovecot);
    smtp = await startSmtpPeer({ dovecot });
    gw = await startGateway({ ...opts.gateway, dataDir });
  } catch (err) {
    await stop();
    throw err;
  }
  const theGateway = gw;
  return {
    dovecot,
    smtp,
    gw,
    dataDir,
    async device() {
      const h = handsetFor(theGateway, await provisionDevice(dataDir));
      open.push(h);
      await h.connect();
      return h;
    },
    stop,
  };
}

/**
 * Mail arriving in one user's INBOX while a test breaks the gateway, and the
 * `mail.new` pushes a handset's application saw of it: every mail must be
 * pushed exactly once, whatever the fault.
 */
export class InboxArrivals {
  readonly subjects: string[] = [];
  readonly #pushed: string[] = [];

  constructor(
    private readonly dovecot: DovecotServer,
    private readonly user: string,
    handset: Handset,
    account: string,
  ) {
    handset.on('event', (e) => {
      const body = e.body as { account?: string; header?: { subject?: unknown } } | undefined;
      if (e.name === 'mail.new' && body?.account === account) this.#pushed.push(String(body.header?.subject));
    });
  }

  /** Resolves with the mail's UID. */
  async arrive(subject: string): Promise<number> {
    this.subjects.push(subject);
    return this.dovecot.appendMessage(this.user, 'INBOX', `Subject: ${subject}\r\n\r\narrivals\r\n`);
  }

  pushed(subject: string): boolean {
    return this.#pushed.includes(subject);
  }

  /**
   * Waits for every mail, then one more: a watcher pushes in UID order, so a
   * repeat of an earlier mail would have come before it. Then each must have
   * been pushed exactly once.
   */
  async assertEachPushedOnce(wait: EventuallyOptions): Promise<void> {
    await eventually('every mail pushed', () => this.subjects.every((s) => this.pushed(s)), wait);
    await this.arrive(`last of ${this.subjects.length}`);
    await eventually('the last mail pushed', () => this.subjects.every((s) => this.pushed(s)), wait);
    const counts = new Map<string, number>();
    for (const s of this.#pushed) counts.set(s, (counts.get(s) ?? 0) + 1);
    assert.deepEqual(
      this.subjects.filter((s) => counts.get(s) !== 1),
      [],
      `each mail pushed exactly once: ${JSON.stringify([...counts])}`,
    );
  }
}

/**
 * The INBOX watch marks a running transport writes on its data directory,
 * read beside it (lmdb serves several processes): a test kills the node only
 * once the mark has caught up with the last push, since a kill -9 between
 * the edge taking a push and the mark repeats that push (METHODS.md).
 */
export class WatchMarkReader {
  readonly #storage: TransportStorage;
  readonly #marks: WatchMarks;

  constructor(dataDir: string) {
    this.#storage = TransportStorage.open(dataDir);
    this.#marks = new WatchMarks(this.#storage);
  }

  uid(deviceId: string, accountId: string): number | undefined {
    return this.#marks.get(deviceId, accountId)?.uid;
  }

  close(): Promise<void> {
    return this.#storage.close();
  }
}
