/**
 * The admin API's router, in Hono's shape: a table of routes, each declaring
 * its method, path, the roles that may call it, its inputs as zod schemas and
 * its answers (the OpenAPI document is built from the same table, openapi.ts);
 * one dispatcher runs the checks in a fixed order, and one error handler
 * (sendApiError) turns whatever a step throws into the answer. A GatewayError
 * with an api.* code plays the part of Hono's HTTPException: its status comes
 * from the one table in http-util.ts.
 *
 * Order of checks: unknown route (a known path with another method too) → 404;
 * a path segment that is not valid percent-encoding, or a token in the URL
 * (`access_token`, which used to be accepted) → 400; no valid token → 401;
 * role → 403; the route's guard (what must be refused before the input is
 * looked at: who may act on whom, the record the path names); input
 * validation → 400 naming the field at fault (path parameters, declared
 * headers, then the query as `query.<name>`, then the JSON body); the
 * handler. A stream route (`ticket: true`) also takes `?ticket=`, a stream
 * ticket for its path, in place of the Authorization header.
 *
 * Paths are templates with {name} parameters, as in OpenAPI. A literal
 * segment wins over a parameter (/devices/export.csv before /devices/{imei}),
 * whatever order the routes are listed in; a HEAD request is routed as GET.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { GatewayError } from '../../device-protocol/errors.ts';
import type { AdminRole, OpsHandler } from '../../server/index.ts';
import type { Principal } from './auth.ts';
import { badInput, parse, queryObject, readJson, sendApiError } from './http-util.ts';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Who may call a route: anyone, or a logged-in user of one of these roles. */
export type Roles = 'public' | readonly AdminRole[];

/** The {names} of a path template: '/devices/{imei}/accounts/{label}' → 'imei' | 'label'. */
export type PathParamNames<P extends string> = P extends `${string}{${infer K}}${infer Rest}`
  ? K | PathParamNames<Rest>
  : never;

/** A path parameter: its description, and a schema when the route validates it. */
export type ParamSpec = string | { description: string; schema: z.ZodType<string> };

/** One answer of a route, for the document: a JSON body, or a body of other types read as text. */
export interface ResponseSpec {
  description: string;
  json?: z.ZodType;
  /** Content types whose body is a string (CSV, XML, an event stream). */
  text?: readonly string[];
}

/** A request header a route reads, validated like the other inputs (a missing one is undefined). */
export interface HeaderSpec {
  description: string;
  schema: z.ZodType<string | undefined>;
}

export interface Context<S, P extends string = string, Q = undefined, B = undefined> {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<PathParamNames<P>, string>;
  /** The declared headers, validated, by their declared names. */
  headers: Record<string, string | undefined>;
  /** The caller; an empty name on a public route. */
  user: Principal;
  address: string;
  query: Q;
  body: B;
  services: S;
}

type Out<T> = T extends z.ZodType ? z.output<T> : undefined;

/** Every {name} of the path, described (and no `params` on a path without any). */
type ParamsOf<P extends string> = [PathParamNames<P>] extends [never]
  ? { params?: undefined }
  : { params: Record<PathParamNames<P>, ParamSpec> };

export type RouteSpec<
  S,
  P extends string,
  Q extends z.ZodType | undefined,
  B extends z.ZodType | undefined,
> = RouteBase<S, P, Q, B> & ParamsOf<P>;

interface RouteBase<S, P extends string, Q extends z.ZodType | undefined, B extends z.ZodType | undefined> {
  method: Method;
  path: P;
  roles: Roles;
  summary: string;
  query?: Q;
  /** A JSON body, validated. */
  body?: B;
  /** An empty body counts as {} (the document marks the body optional). */
  bodyOptional?: boolean;
  /** A body the handler reads itself (CSV): its content type, for the document. */
  rawBody?: string;
  /** Request headers the handler reads (e.g. Idempotency-Key), by their canonical names. */
  headers?: Record<string, HeaderSpec>;
  /** A Server-Sent Events stream: `?ticket=` may stand in for the Authorization header. */
  ticket?: boolean;
  responses: Record<string, ResponseSpec>;
  /** Runs after the role check and before input validation. */
  guard?(ctx: Context<S, P>): void | Promise<void>;
  handle(ctx: Context<S, P, Out<Q>, Out<B>>): void | Promise<void>;
}

/** A route with its types erased, as the table holds it. */
export interface Route<S> {
  method: Method;
  path: string;
  roles: Roles;
  summary: string;
  params?: Record<string, ParamSpec> | undefined;
  query?: z.ZodType;
  body?: z.ZodType;
  bodyOptional?: boolean;
  rawBody?: string;
  headers?: Record<string, HeaderSpec>;
  ticket?: boolean;
  responses: Record<string, ResponseSpec>;
  guard?(ctx: Context<S>): void | Promise<void>;
  /** The table erases each route's own input types (routeFor checked them). */
  handle(ctx: Context<S, string, any, any>): void | Promise<void>;
}

/** `const route = routeFor<MyServices>()`, then `route({...})` types one route's handler from its schemas. */
export function routeFor<S>() {
  return <
    P extends string,
    Q extends z.ZodType | undefined = undefined,
    B extends z.ZodType | undefined = undefined,
  >(
    spec: RouteSpec<S, P, Q, B>,
  ): Route<S> => spec as unknown as Route<S>;
}

/** The {names} of a path template, in order. */
export function pathParamNames(path: string): string[] {
  return [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1] ?? '');
}

interface Compiled<S> {
  route: Route<S>;
  pattern: RegExp;
  keys: string[];
  /** One digit per segment, 0 literal, 1 parameter: the smaller sorts (and matches) first. */
  rank: string;
}

function compile<S>(route: Route<S>): Compiled<S> {
  const keys: string[] = [];
  const segments = route.path.split('/').slice(1);
  const source = segments
    .map((seg) => {
      const m = /^\{(\w+)\}$/.exec(seg);
      if (m?.[1]) {
        keys.push(m[1]);
        return '/([^/]+)';
      }
      if (/[{}]/.test(seg)) throw new Error(`route ${route.path}: a parameter must be a whole segment`);
      return `/${seg.replace(/[.*+?^$()|[\]\\]/g, '\\$&')}`;
    })
    .join('');
  const rank = segments.map((seg) => (seg.startsWith('{') ? '1' : '0')).join('');
  return { route, pattern: new RegExp(`^${source}$`), keys, rank };
}

export interface RouterOptions<S> {
  /** Where the API is mounted, e.g. /api/v1; other paths are left to the next handler. */
  prefix: string;
  services: S;
  /**
   * The caller of a non-public route; throws api.unauthorized (401) when
   * there is none. `ticketPath`: the route takes a stream ticket for this path.
   */
  authenticate(req: IncomingMessage, url: URL, o: { ticketPath?: string }): Principal;
  logger: Logger;
}

export function createRouter<S>(routes: readonly Route<S>[], o: RouterOptions<S>): OpsHandler {
  const table = routes.map(compile).sort((a, b) => (a.rank < b.rank ? -1 : a.rank > b.rank ? 1 : 0));
  const { prefix } = o;

  const match = (method: string, path: string) => {
    for (const c of table) {
      if (c.route.method !== method) continue;
      const m = c.pattern.exec(path);
      if (!m) continue;
      const params: Record<string, string> = {};
      c.keys.forEach((k, i) => {
        try {
          params[k] = decodeURIComponent(m[i + 1] ?? '');
        } catch {
          // A truncated or invalid %-escape (say %E0%A4%A) is the client's mistake, not ours.
          throw badInput(`${k}: the path segment is not valid percent-encoding`, k);
        }
      });
      return { route: c.route, params };
    }
    return undefined;
  };

  return async (req, res, url) => {
    if (url.pathname !== prefix && !url.pathname.startsWith(`${prefix}/`)) return false;
    try {
      const path = url.pathname.slice(prefix.length) || '/';
      const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
      const found = match(method, path);
      if (!found) throw new GatewayError('api.not_found', `no route for ${req.method} ${url.pathname}`);
      const { route, params } = found;
      if (url.searchParams.has('access_token'))
        throw badInput(
          'a token is never accepted in a URL: send Authorization: Bearer <token> (a stream takes a ?ticket=)',
          'access_token',
        );
      let user: Principal = { name: '', role: 'viewer' };
      if (route.roles !== 'public') {
        user = o.authenticate(req, url, route.ticket ? { ticketPath: path } : {});
        if (!route.roles.includes(user.role))
          throw new GatewayError('api.forbidden', `the ${user.role} role may not ${req.method} ${path}`);
      }
      const ctx: Context<S, string, unknown, unknown> = {
        req,
        res,
        url,
        params,
        headers: {},
        user,
        address: req.socket.remoteAddress ?? 'unknown',
        query: undefined,
        body: undefined,
        services: o.services,
      };
      await route.guard?.(ctx as Context<S>);
      for (const [name, spec] of Object.entries(route.params ?? {}))
        if (typeof spec !== 'string') params[name] = parse(spec.schema, params[name], name);
      for (const [name, spec] of Object.entries(route.headers ?? {})) {
        const raw = req.headers[name.toLowerCase()];
        ctx.headers[name] = parse(spec.schema, Array.isArray(raw) ? raw.join(',') : raw, name);
      }
      if (route.query)
        ctx.query = parse(route.query, queryObject(url, route.ticket ? ['ticket'] : []), 'query');
      if (route.body) {
        const raw = await readJson(req);
        ctx.body = parse(route.body, raw === undefined && route.bodyOptional ? {} : raw);
      }
      await route.handle(ctx);
    } catch (err) {
      sendApiError(res, err, o.logger);
    }
    return true;
  };
}
