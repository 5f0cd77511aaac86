/**
 * What the admin API's route handlers work with (the services the router
 * hands to every route) and the few helpers several resources share: the
 * role lists and the audit record every change leaves.
 */
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { AdminRole, Bus, DeviceLogRecord, Registry, Sealer } from '../../server/index.ts';
import type { NodeMonitor } from '../monitor.ts';
import type { RecordsStore } from '../records-store.ts';
import type { LoginLimiter, TokenIssuer } from './auth.ts';
import { type Context, type ResponseSpec, routeFor } from './router.ts';
import { sendJson } from './http-util.ts';
import * as S from './schemas.ts';

export interface ApiServices {
  registry: Registry;
  records: RecordsStore;
  monitor: NodeMonitor;
  bus: Bus;
  /** The transport node serving a device (rendezvous over the live transports); undefined when none is up. */
  transportOf(deviceId: string): string | undefined;
  logger: Logger;
  now(): number;
  tokens: TokenIssuer;
  limiter: LoginLimiter;
  /** Seals a provisioned account's password; absent, the account routes answer 503. */
  sealSecret: ((secret: string, context: string) => string) | undefined;
  /** Seals and opens the one-time secrets of import jobs; absent, an import that writes answers 503. */
  importSealer: (() => Sealer) | undefined;
  /** Rows an import may have (config admin.importMaxRows). */
  importMaxRows: number;
  /** Where an import's body is kept between its two passes (`<data>/tmp`). */
  spoolDir: string | undefined;
  /** Moves the audit entries the registry wrote itself (CLI, import jobs) into the audit log. */
  drainAudit(): Promise<unknown>;
  /** Subscribes to the live feed of stored log records. */
  onStoredLogs(listener: (logs: DeviceLogRecord[]) => void): () => void;
  /** Answers with a Server-Sent Events stream, ended when the client goes or the API closes. */
  openStream(res: ServerResponse, onClose: () => void): void;
}

export type ApiContext<P extends string = string> = Context<ApiServices, P, unknown, unknown>;

/** Declares one admin API route; its handler's query and body are typed from its schemas. */
export const route = routeFor<ApiServices>();

/** A JSON answer of a route, for the document. */
export function json(schema: z.ZodType, description = 'OK'): ResponseSpec {
  return { description, json: schema };
}

/** An error answer ({error:{code, message, field?}}) of a route, for the document. */
export function failure(description: string): ResponseSpec {
  return { description, json: S.ErrorBody };
}

export const ALL: readonly AdminRole[] = ['admin', 'operator', 'viewer'];
export const STAFF: readonly AdminRole[] = ['admin', 'operator'];
export const ADMIN: readonly AdminRole[] = ['admin'];

/** Records a change: who, from where, what, and the record before and after. */
export async function audit(
  ctx: ApiContext,
  action: string,
  target: string,
  before?: unknown,
  after?: unknown,
): Promise<void> {
  await ctx.services.records.addAudit({
    actor: ctx.user.name,
    role: ctx.user.role,
    address: ctx.address,
    action,
    target,
    ...(before === undefined ? {} : { before }),
    ...(after === undefined ? {} : { after }),
  });
}

/** Answers with a stream ticket for `streamPath` (the path under /api/v1) of the caller. */
export function sendStreamTicket(ctx: ApiContext, streamPath: string): void {
  const { ticket, expiresAt } = ctx.services.tokens.issueTicket(
    ctx.user.name,
    ctx.user.epoch ?? 0,
    streamPath,
  );
  sendJson(ctx.res, 200, {
    ticket,
    expiresAt,
    url: `/api/v1${streamPath}?ticket=${encodeURIComponent(ticket)}`,
  });
}

export function iso(ms: number | undefined): string {
  return ms === undefined ? '' : new Date(ms).toISOString();
}
