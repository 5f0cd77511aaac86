/** A device's log records: pages of the stored ones, and a live tail as Server-Sent Events. */
import { z } from 'zod';
import type { DeviceLogKind } from '../../../server/index.ts';
import { json, route, STAFF, sendStreamTicket } from '../context.ts';
import { badInput, parseTime, sendJson } from '../http-util.ts';
import * as S from '../schemas.ts';
import * as O from '../schemas-ops.ts';
import { imei } from './devices.ts';

function logKinds(value: string | undefined): DeviceLogKind[] | undefined {
  if (value === undefined || value === '') return undefined;
  const kinds = value.split(',').map((k) => k.trim());
  for (const k of kinds) {
    if (!(O.LOG_KINDS as readonly string[]).includes(k))
      throw badInput(`kind ${JSON.stringify(k)}: one of ${O.LOG_KINDS.join(', ')}`, 'kind');
  }
  return kinds as DeviceLogKind[];
}

/** Not strict: the live tail has always let other parameters pass. */
const StreamQuery = z.object({ kind: O.LogQuery.shape.kind });

export const logRoutes = [
  route({
    method: 'GET',
    path: '/devices/{imei}/logs',
    roles: STAFF,
    summary: "One device's log records (newest first by default)",
    params: { imei },
    query: O.LogQuery,
    responses: { '200': json(O.LogList) },
    handle({ res, query: q, params, services: { records } }) {
      const from = parseTime(q.from, 'from');
      const to = parseTime(q.to, 'to');
      const kinds = logKinds(q.kind);
      if (q.cursor !== undefined && !/^\d{1,16}\.\d{1,16}$/.test(q.cursor))
        throw badInput('cursor: use the next value of a previous page', 'cursor');
      const page = records.queryLogs(params.imei, {
        limit: q.limit,
        order: q.order,
        ...(from === undefined ? {} : { from }),
        ...(to === undefined ? {} : { to }),
        ...(kinds ? { kinds } : {}),
        ...(q.cursor ? { cursor: q.cursor } : {}),
      });
      sendJson(res, 200, page);
    },
  }),
  route({
    method: 'GET',
    path: '/devices/{imei}/logs/stream',
    roles: STAFF,
    summary:
      'Live tail as Server-Sent Events: `event: log` with a DeviceLogRecord as data for every record stored from now on; a comment line every 15 s keeps proxies from closing it. EventSource: pass `?ticket=` from POST …/stream-ticket',
    params: { imei },
    query: StreamQuery,
    ticket: true,
    responses: { '200': { description: 'text/event-stream', text: ['text/event-stream'] } },
    handle({ res, query, params, services }) {
      const kinds = logKinds(query.kind);
      const { imei } = params;
      const stop = services.onStoredLogs((logs) => {
        for (const r of logs) {
          if (r.imei !== imei || (kinds && !kinds.includes(r.kind))) continue;
          res.write(`event: log\ndata: ${JSON.stringify(r)}\n\n`);
        }
      });
      services.openStream(res, stop);
    },
  }),
  route({
    method: 'POST',
    path: '/devices/{imei}/logs/stream-ticket',
    roles: STAFF,
    summary:
      'A ticket for the live tail of this device: `?ticket=` on GET /devices/{imei}/logs/stream (EventSource cannot send the Authorization header); good once, for 30 s',
    params: { imei },
    responses: { '200': json(S.StreamTicket) },
    handle: (ctx) => sendStreamTicket(ctx, `/devices/${ctx.params.imei}/logs/stream`),
  }),
];
