/** The node monitor: nodes from their heartbeats, alarms, and draining a node. */
import { z } from 'zod';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { Subjects } from '../../../server/index.ts';
import { ADMIN, ALL, audit, json, route, sendStreamTicket } from '../context.ts';
import { badInput, sendJson } from '../http-util.ts';
import * as S from '../schemas.ts';
import * as O from '../schemas-ops.ts';

/** Not strict: the stream has always let other parameters pass. */
const StreamQuery = z.object({});

/**
 * Checked by the handler, not the schema: its error names the field `active`
 * (clients match on it), where schema errors name `query.<name>`. The schema
 * lets any string through and only documents the two values.
 */
const AlarmQuery = z.object({
  active: z
    .string()
    .optional()
    .meta({ enum: ['true', 'false'] }),
});

const HistoryQuery = z.object({}).strict();

const AlarmHistoryQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(1000).optional().meta({ description: 'Default 100' }),
    before: z.coerce.number().int().min(1).optional(),
  })
  .strict();

export const nodeRoutes = [
  route({
    method: 'GET',
    path: '/nodes',
    roles: ALL,
    summary: 'Every node (from heartbeats); nodes gone in the last hour are listed with status gone',
    responses: {
      '200': json(z.object({ items: z.array(O.NodeView), at: z.number() })),
    },
    handle: ({ res, services: { monitor, now } }) =>
      sendJson(res, 200, { items: monitor.nodes(), at: now() }),
  }),
  route({
    method: 'GET',
    path: '/nodes/stream',
    roles: ALL,
    summary:
      'Server-Sent Events: `event: nodes` with {items, at} every 2 s, and `event: alarms` with {items} when they change. EventSource: pass `?ticket=` from POST /nodes/stream-ticket',
    query: StreamQuery,
    ticket: true,
    responses: { '200': { description: 'text/event-stream', text: ['text/event-stream'] } },
    handle({ res, services: { monitor, now, openStream } }) {
      const send = () =>
        res.write(`event: nodes\ndata: ${JSON.stringify({ items: monitor.nodes(), at: now() })}\n\n`);
      const sendAlarms = () =>
        res.write(`event: alarms\ndata: ${JSON.stringify({ items: monitor.alarmList() })}\n\n`);
      const timer = setInterval(send, 2000);
      const stopAlarms = monitor.onAlarmsChanged(sendAlarms);
      openStream(res, () => {
        clearInterval(timer);
        stopAlarms();
      });
      send();
      sendAlarms();
    },
  }),
  route({
    method: 'GET',
    path: '/nodes/history',
    roles: ALL,
    summary:
      'The last hour of this admin node, oldest first: a sample every intervalMs (config admin.monitorSampleMs, 15 s) of sessions, devices connected, events per second and errors (kept in memory: empty after a restart)',
    query: HistoryQuery,
    responses: {
      '200': json(z.object({ intervalMs: z.number().int(), items: z.array(O.MonitorSample) })),
    },
    handle: ({ res, services: { monitor } }) =>
      sendJson(res, 200, { intervalMs: monitor.history.intervalMs, items: monitor.history.list() }),
  }),
  route({
    method: 'POST',
    path: '/nodes/stream-ticket',
    roles: ALL,
    summary:
      'A ticket for GET /nodes/stream: `?ticket=` (EventSource cannot send the Authorization header); good once, for 30 s',
    responses: { '200': json(S.StreamTicket) },
    handle: (ctx) => sendStreamTicket(ctx, '/nodes/stream'),
  }),
  route({
    method: 'POST',
    path: '/nodes/{id}/drain',
    roles: ADMIN,
    summary: 'Drain a node (audited): it tells its devices to move, then exits',
    params: { id: 'Node id' },
    body: O.DrainBody,
    bodyOptional: true,
    responses: { '202': json(z.object({ ok: z.literal(true) }), 'Asked') },
    async handle(ctx) {
      const { id } = ctx.params;
      const { monitor, bus } = ctx.services;
      if (!monitor.isLive(id)) throw new GatewayError('api.not_found', `no live node ${id}`, { field: 'id' });
      await audit(ctx, 'node.drain', `node:${id}`, undefined, {
        reason: ctx.body.reason ?? 'asked from the admin API',
      });
      bus.publish(Subjects.drain(id), {
        reason: ctx.body.reason ?? `asked by ${ctx.user.name} from the admin API`,
      });
      sendJson(ctx.res, 202, { ok: true });
    },
  }),
  route({
    method: 'GET',
    path: '/alarms',
    roles: ALL,
    summary:
      'Alarms: node gone, admin gone, NATS server gone, takeover done, backend failing (a device or a preset). Active first',
    query: AlarmQuery,
    responses: { '200': json(z.object({ items: z.array(O.Alarm) })) },
    handle({ res, query: { active }, services: { monitor } }) {
      if (active !== undefined && active !== 'true' && active !== 'false')
        throw badInput('active: true or false', 'active');
      sendJson(res, 200, { items: monitor.alarmList(active === 'true') });
    },
  }),
  route({
    method: 'GET',
    path: '/alarms/history',
    roles: ALL,
    summary:
      'Every raise and clear, newest first, from the shared history (the same on every admin node, kept across restarts)',
    query: AlarmHistoryQuery,
    responses: { '200': json(z.object({ items: z.array(O.AlarmHistoryEntry) })) },
    async handle({ res, query, services: { monitor } }) {
      const limit = query.limit ?? 100;
      const items = await monitor.alarmHistory({
        limit,
        ...(query.before === undefined ? {} : { beforeSeq: query.before }),
      });
      sendJson(res, 200, {
        items: items.map(({ seq, record: r }) => ({
          seq,
          id: r.id,
          kind: r.kind,
          severity: r.severity,
          subject: r.subject,
          state: r.state,
          message: r.message,
          since: r.since,
          at: r.at,
          node: r.node,
        })),
      });
    },
  }),
];
