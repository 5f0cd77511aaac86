/**
 * The admin API's route table: every resource's routes, and the OpenAPI
 * document built from them. Paths appear in the document in this order.
 */
import { type ApiServices, route } from '../context.ts';
import { sendJson } from '../http-util.ts';
import { buildOpenApiDocument } from '../openapi.ts';
import type { Route } from '../router.ts';
import { accountRoutes } from './accounts.ts';
import { auditRoutes } from './audit.ts';
import { authRoutes } from './auth.ts';
import { deviceRoutes } from './devices.ts';
import { importRoutes } from './imports.ts';
import { logRoutes } from './logs.ts';
import { nodeRoutes } from './nodes.ts';
import { pushRoutes } from './push.ts';
import { refDataRoutes } from './refs.ts';
import { reportRoutes } from './reports.ts';
import { userRoutes } from './users.ts';

const openApiRoute = route({
  method: 'GET',
  path: '/openapi.json',
  roles: 'public',
  summary: 'This document',
  responses: { '200': { description: 'OpenAPI 3.1' } },
  handle: ({ res }) => sendJson(res, 200, openApiDocument()),
});

export const API_ROUTES: readonly Route<ApiServices>[] = [
  openApiRoute,
  ...authRoutes,
  ...userRoutes,
  ...deviceRoutes,
  ...importRoutes,
  ...accountRoutes,
  ...pushRoutes,
  ...logRoutes,
  ...refDataRoutes,
  ...reportRoutes,
  ...nodeRoutes,
  ...auditRoutes,
];

let cached: Record<string, unknown> | undefined;

/** The document of API_ROUTES (built once). */
export function openApiDocument(): Record<string, unknown> {
  cached ??= buildOpenApiDocument(API_ROUTES);
  return cached;
}
