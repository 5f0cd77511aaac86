/**
 * Request plumbing of the admin API: body reading with a size cap, zod
 * validation into api.bad_input with the field at fault, and the one place an
 * error becomes an answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { GatewayError, toGatewayError } from '../../device-protocol/errors.ts';
import { errorBody, httpStatusOf, sendJson } from '../../server/index.ts';

export function sendApiError(res: ServerResponse, err: unknown, logger?: Logger, extra?: object): void {
  const gw = toGatewayError(err);
  const status = httpStatusOf(gw);
  if (status >= 500) logger?.error({ err: gw.cause ?? gw, code: gw.code }, 'admin API request failed');
  const error = errorBody(gw);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (gw.code === 'auth.rate_limited' || gw.code === 'api.unauthorized') {
    if (gw.retryAfterMs !== undefined)
      res.setHeader('retry-after', String(Math.ceil(gw.retryAfterMs / 1000)));
    if (gw.code === 'api.unauthorized') res.setHeader('www-authenticate', 'Bearer');
  }
  sendJson(res, status, { error, ...extra });
}

export function badInput(message: string, field?: string): GatewayError {
  return new GatewayError('api.bad_input', message, field === undefined ? {} : { field });
}

/** Validates with a zod schema; the first issue becomes api.bad_input naming its field. */
export function parse<T extends z.ZodType>(schema: T, value: unknown, where = ''): z.infer<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  if (!issue) throw badInput(`${where || 'body'}: invalid`, where || undefined);
  let path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') path = [path, issue.keys[0]].filter(Boolean).join('.');
  const field = [where, path].filter(Boolean).join('.') || undefined;
  const message =
    issue.code === 'unrecognized_keys'
      ? `unknown field ${issue.keys[0]}`
      : `${field ?? 'body'}: ${issue.message}`;
  throw badInput(message, field);
}

export async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > maxBytes)
    throw new GatewayError('api.too_large', `the body is larger than ${maxBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new GatewayError('api.too_large', `the body is larger than ${maxBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function readJson(req: IncomingMessage, maxBytes = 1 << 20): Promise<unknown> {
  const body = await readBody(req, maxBytes);
  if (body.length === 0) return undefined;
  const type = String(req.headers['content-type'] ?? '');
  if (type !== '' && !type.includes('json')) throw badInput('send application/json', 'content-type');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw badInput('the body is not valid JSON', 'body');
  }
}

/** The query as an object, less the parameters the router has read itself (a stream's ticket). */
export function queryObject(url: URL, omit: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of url.searchParams) if (!omit.includes(k)) out[k] = v;
  return out;
}

/** ISO 8601 (date or date-time) or epoch milliseconds. */
export function parseTime(value: string | undefined, field: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  if (/^\d{1,16}$/.test(value)) return Number(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value))
    throw badInput(`${field}: ISO 8601 time or epoch milliseconds`, field);
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw badInput(`${field}: ISO 8601 time or epoch milliseconds`, field);
  return ms;
}

export function sendText(
  res: ServerResponse,
  status: number,
  type: string,
  text: string,
  filename?: string,
): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...(filename ? { 'content-disposition': `attachment; filename="${filename}"` } : {}),
  });
  res.end(text);
}

export { sendJson };
