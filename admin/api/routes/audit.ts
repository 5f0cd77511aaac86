/**
 * The audit log (every change made through the API or the CLI) and the
 * security log (refused attempts naming IMEIs that are not provisioned), newest first.
 */
import { ADMIN, json, route, STAFF } from '../context.ts';
import { badInput, parseTime, sendJson } from '../http-util.ts';
import * as S from '../schemas-ops.ts';

/** The page of a newest-first log the query asks for (times and cursor checked). */
function timePage(q: { from?: string; to?: string; limit: number; cursor?: string }) {
  const from = parseTime(q.from, 'from');
  const to = parseTime(q.to, 'to');
  if (q.cursor !== undefined && !/^\d{1,16}\.\d{1,16}$/.test(q.cursor))
    throw badInput('cursor: use the next value of a previous page', 'cursor');
  return {
    limit: q.limit,
    ...(from === undefined ? {} : { from }),
    ...(to === undefined ? {} : { to }),
    ...(q.cursor ? { cursor: q.cursor } : {}),
  };
}

export const auditRoutes = [
  route({
    method: 'GET',
    path: '/audit',
    roles: STAFF,
    summary:
      'Audit log of every change made through the API or the CLI (actor cli:<os user>), and of import jobs (newest first)',
    query: S.AuditQuery,
    responses: { '200': json(S.AuditList) },
    async handle({ res, query: q, services: { records, drainAudit } }) {
      // Changes the registry recorded itself (CLI, import jobs) are moved in first.
      await drainAudit();
      sendJson(
        res,
        200,
        records.queryAudit({
          ...timePage(q),
          ...(q.actor ? { actor: q.actor } : {}),
          ...(q.action ? { action: q.action } : {}),
          ...(q.target ? { target: q.target } : {}),
        }),
      );
    },
  }),
  route({
    method: 'GET',
    path: '/security-log',
    // Source addresses of outsiders: for admins only.
    roles: ADMIN,
    summary:
      'Refused Hello/Resume attempts for IMEIs that are not provisioned (sampled; at most 100,000 records, 7 days), newest first',
    query: S.SecurityQuery,
    responses: { '200': json(S.LogList) },
    handle({ res, query: q, services: { records } }) {
      sendJson(res, 200, records.querySecurity(timePage(q)));
    },
  }),
];
