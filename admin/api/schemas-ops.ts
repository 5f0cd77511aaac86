/**
 * The admin REST API's schemas for what operators read of the running
 * system: device logs, usage, nodes and their monitor, alarms, the audit
 * trail. The shared building blocks (ids, times, roles) are schemas.ts's.
 */
import { z } from 'zod';
import { ALARM_KINDS, ALARM_SEVERITIES, DEVICE_LOG_KINDS } from '../../server/index.ts';
import { AdminRoleName, EpochMs, PushKind, RefId } from './schemas.ts';

// ---- logs, usage -------------------------------------------------------------

export const LOG_KINDS = DEVICE_LOG_KINDS;

export const DeviceLogRecord = z
  .object({
    at: EpochMs,
    imei: z.string(),
    kind: z.enum(LOG_KINDS),
    node: z.string(),
    service: z.enum(['session', 'mail', 'im']),
    message: z.string().optional(),
    code: z.string().optional(),
    bytesIn: z.number().optional(),
    bytesOut: z.number().optional(),
    detail: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
  })
  .meta({ id: 'DeviceLogRecord' });

const TimeParam = z
  .string()
  .meta({ description: 'ISO 8601 time (2026-01-31T12:00:00Z, 2026-01-31) or epoch milliseconds' });

export const LogQuery = z
  .object({
    from: TimeParam.optional(),
    to: TimeParam.optional(),
    kind: z.string().optional().meta({ description: 'One kind or several separated by commas' }),
    limit: z.coerce.number().int().min(1).max(1000).default(200),
    order: z.enum(['asc', 'desc']).default('desc'),
    cursor: z.string().max(200).optional(),
  })
  .strict();

export const LogList = z
  .object({
    items: z.array(DeviceLogRecord),
    next: z.string().optional().meta({ description: 'Pass as `cursor`' }),
  })
  .meta({ id: 'LogList' });

export const UsageQuery = z
  .object({
    from: TimeParam.optional(),
    to: TimeParam.optional(),
    granularity: z.enum(['hour', 'day']).default('hour'),
    service: z.enum(['session', 'mail', 'im']).optional(),
    operator: RefId.optional(),
    imei: z
      .string()
      .regex(/^\d{15}$/, { error: '15 digits' })
      .optional(),
    groupBy: z.enum(['none', 'service', 'operator']).default('none'),
    format: z.enum(['json', 'csv', 'xml']).default('json'),
  })
  .strict();

export const UsageCounters = z.object({
  logins: z.number().int(),
  logouts: z.number().int(),
  messagesIn: z.number().int(),
  messagesOut: z.number().int(),
  bytesIn: z.number().int(),
  bytesOut: z.number().int(),
});

export const UsageRow = UsageCounters.extend({
  bucket: z.string().meta({ description: 'Start of the hour or day (ISO 8601, UTC)' }),
  service: z.string().optional(),
  operator: z.string().optional(),
}).meta({ id: 'UsageRow' });

export const UsageReport = z
  .object({
    from: z.string(),
    to: z.string(),
    granularity: z.enum(['hour', 'day']),
    groupBy: z.enum(['none', 'service', 'operator']),
    filters: z.object({
      service: z.string().optional(),
      operator: z.string().optional(),
      imei: z.string().optional(),
    }),
    rows: z
      .array(UsageRow)
      .meta({ description: 'One row per bucket (and group), zero-filled, in time order' }),
    totals: UsageCounters,
    wakeups: z
      .array(
        z.object({
          channel: PushKind,
          sent: z.number().int(),
          failed: z.number().int(),
          pruned: z
            .number()
            .int()
            .meta({ description: 'Channels removed because their service called them gone' }),
          latency: z
            .object({
              meanSeconds: z.number(),
              p50Seconds: z.number().nullable(),
              p99Seconds: z.number().nullable(),
            })
            .optional()
            .meta({
              description:
                'From the first item a wake-up told of to its push service taking it, of the sent ones. A quantile is the upper bound of the latency bucket it falls in (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60 s; null: beyond 60 s)',
            }),
        }),
      )
      .meta({
        description:
          'Wake-ups per channel kind over the whole range (of the operator filter, when given; not split by service), from every transport node; kinds with none are left out',
      }),
  })
  .meta({ id: 'UsageReport' });

// ---- nodes, alarms, audit -------------------------------------------------------

export const NodeView = z
  .object({
    nodeId: z.string(),
    roles: z.array(z.string()),
    release: z.string(),
    startedAt: EpochMs,
    uptimeSeconds: z.number(),
    rssBytes: z.number(),
    cpuSeconds: z.number(),
    cpuPercent: z.number().meta({ description: 'CPU use since the previous heartbeat (100 = one core)' }),
    sessions: z
      .number()
      .int()
      .meta({ description: 'Device sessions held, those waiting within their resume window included' }),
    connected: z.number().int().meta({ description: 'Of those, devices online now (a carrier attached)' }),
    served: z
      .object({
        devices: z.number().int().meta({ description: 'Devices with at least one account on this node' }),
        mailAccounts: z.number().int(),
        imAccounts: z.number().int(),
      })
      .optional()
      .meta({ description: 'Transport nodes: the devices and the mail and chat accounts they serve' }),
    status: z.enum(['up', 'draining', 'gone']),
    lastSeenAt: EpochMs,
  })
  .meta({ id: 'Node' });

export const MonitorSample = z
  .object({
    at: EpochMs.meta({ description: 'End of the interval' }),
    sessions: z.number().int().meta({ description: 'Device sessions held by the live nodes' }),
    connected: z.number().int().meta({ description: 'Of those, devices online' }),
    eventsPerSecond: z
      .number()
      .meta({ description: 'Device log records stored per second over the interval' }),
    errors: z.number().int().meta({ description: 'backend_error and error records in the interval' }),
    authFailures: z
      .number()
      .int()
      .meta({ description: 'auth_failure records in the interval (sampled under a flood)' }),
  })
  .meta({ id: 'MonitorSample' });

export const DrainBody = z.object({ reason: z.string().max(200).optional() }).strict();

export const Alarm = z
  .object({
    id: z.string(),
    kind: z.enum(ALARM_KINDS),
    severity: z.enum(ALARM_SEVERITIES),
    subject: z.string().meta({
      description:
        'Node id (node_gone, takeover_done: the node taken over), `cluster` (admin_gone), a NATS server (host:port), device:<imei>:<service> or preset:<service>:<label> (backend_failing)',
    }),
    message: z.string(),
    since: EpochMs,
    lastAt: EpochMs,
    count: z.number().int(),
    active: z.boolean(),
  })
  .meta({ id: 'Alarm' });

export const AlarmHistoryEntry = z
  .object({
    seq: z
      .number()
      .int()
      .meta({ description: 'Position in the history; pass as `before` for older entries' }),
    id: z.string(),
    kind: z.enum(ALARM_KINDS),
    severity: z.enum(ALARM_SEVERITIES),
    subject: z.string(),
    state: z.enum(['raised', 'cleared']),
    message: z.string(),
    since: EpochMs,
    at: EpochMs,
    node: z.string().meta({ description: 'The node that raised or cleared it' }),
  })
  .meta({ id: 'AlarmHistoryEntry' });

export const AuditEntry = z
  .object({
    id: z.string(),
    at: EpochMs,
    actor: z.string().meta({ description: 'A user name, or cli:<os user> for a change made with the CLI' }),
    role: z.union([AdminRoleName, z.literal('cli')]),
    address: z.string().optional().meta({ description: 'Client address (the host name for the CLI)' }),
    action: z
      .string()
      .meta({ description: 'e.g. device.create, device.import, operators.update, node.drain' }),
    target: z.string(),
    before: z.unknown().optional(),
    after: z.unknown().optional(),
  })
  .meta({ id: 'AuditEntry' });

export const AuditQuery = z
  .object({
    from: TimeParam.optional(),
    to: TimeParam.optional(),
    actor: z.string().max(64).optional(),
    action: z.string().max(64).optional(),
    target: z.string().max(200).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    cursor: z.string().max(200).optional(),
  })
  .strict();

export const SecurityQuery = z
  .object({
    from: TimeParam.optional(),
    to: TimeParam.optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    cursor: z.string().max(200).optional(),
  })
  .strict();

export const AuditList = z
  .object({ items: z.array(AuditEntry), next: z.string().optional() })
  .meta({ id: 'AuditList' });
