/**
 * The role table of a node: each role (admin, transport, transcoder, edge)
 * is a RoleDefinition in its own role.ts that builds the role from the config
 * and the node's shared pieces (RoleContext), and returns a RoleHandle that
 * says whether it can serve and how to drain and stop it. node.ts starts the
 * table in order and stops it in reverse: the order is the dependency order
 * (the admin's registry before the transport that reads it, every backend
 * role before the edge that routes devices to them), so that a device never
 * reaches a role that is not up yet, and the edge stops taking work first.
 *
 * No role reads process.env: what it needs from the environment is in the
 * config (server/config.ts reads the environment once).
 */
import type { Logger } from 'pino';
import { GatewayError } from '../device-protocol/errors.ts';
import type { Registry as PromRegistry } from 'prom-client';
import type { AlarmService } from './alarms/service.ts';
import type { Bus, ServedCounts } from './bus/bus.ts';
import type { Config, Role } from './config.ts';
import type { ServingTls } from './net/serving-tls.ts';
import type { OpsServer } from './ops/http.ts';
import type { Recorder } from './records/types.ts';
import type { Membership } from './router/membership.ts';
import type { Registry } from './store/registry.ts';

/** What the node gives every role. */
export interface RoleContext {
  readonly config: Config;
  /** The node's id: bus subjects (`mmgw.transport.<id>.req`), heartbeats, records. */
  readonly nodeId: string;
  readonly bus: Bus;
  readonly logger: Logger;
  /** The node's Prometheus registry: roles register their own series into it. */
  readonly metrics: PromRegistry;
  readonly membership: Membership;
  /** Device log records and usage counters, sent to the admin over the bus. */
  readonly recorder: Recorder;
  /** The node's ops endpoint on the admin port, where the admin API and UI mount; absent in child processes. */
  readonly ops?: OpsServer;
  /**
   * The device registry when a role started earlier in this process holds it
   * (the admin opens it; the transport reads capability profiles from it).
   */
  registry?: Registry;
  /** This process is edge worker `index` of a primary (it runs the edge alone, over the IPC bus). */
  readonly worker?: { index: number };
  /** The certificate of the node's listeners (config `tls`); absent without TLS and in a supervised role's child. */
  readonly tls?: ServingTls;
  /** The node's alarms (server/alarms): in a primary process only. */
  readonly alarms?: AlarmService;
  /** The role's advertised state changed (a supervised child came up or went down): heartbeat now. */
  announce(): void;
}

export interface RoleHandle {
  /** Why the role cannot serve now ("transport: restarting"); empty or absent: it can. */
  readiness?(): string[];
  /** Whether the node's heartbeat lists this role now. Absent: always, once started. */
  advertised?(): boolean;
  /** Metrics of the role's other processes (edge workers, a supervised child), one array each, summed into /metrics. */
  metrics?(): Promise<object[][]>;
  /** Stops taking new work and hands what it holds to others (the edge's devices); stop() follows. */
  drain?(): Promise<void>;
  /** Stops the role and frees what it holds. Called once. */
  stop(): Promise<void>;
  /** The device port (edge). */
  readonly devicePort?: number;
  /** Device sessions held and devices connected (edge; in the heartbeat). */
  sessionCount?(): number;
  connectedCount?(): number;
  /** Devices and accounts served (transport; in the heartbeat). */
  servedCount?(): ServedCounts | undefined;
  /** SIGHUP reached the node: certificates of listeners in other processes (edge workers) to reload. */
  reloadTls?(): void;
  /** The device registry this role opened (admin): later roles and the node's callers get it. */
  readonly registry?: Registry;
}

export interface RoleDefinition {
  /** A role of the config, or a node-internal step (e.g. "recorder"). */
  readonly name: Role | string;
  start(ctx: RoleContext): Promise<RoleHandle>;
  /**
   * Needs nothing of the role before it: starts while that one still starts
   * (the transcoder beside the transport: two child processes spawned at
   * once shorten a supervised node's restart by the second one's start).
   */
  readonly alongsidePrevious?: boolean;
}

export interface StartedRole {
  readonly name: string;
  readonly handle: RoleHandle;
}

/**
 * Starts the roles in table order (a role `alongsidePrevious` together with
 * the one before it), appending each to `started` as soon as it is up (the
 * node's readiness and heartbeat read that list while later roles start). A
 * role that fails to start throws, once the roles starting beside it have
 * settled; those in `started` stay there for the caller to stop
 * (stopRoles), as it stops everything else it built.
 */
export async function startRoles(
  table: readonly RoleDefinition[],
  ctx: RoleContext,
  started: StartedRole[],
  onStarted: (role: StartedRole) => void = () => {},
): Promise<void> {
  // `started` stays in table order (the heartbeat's and /nodes' role list) when roles beside
  // each other come up in another order.
  const rank = new Map<StartedRole, number>();
  const startOne = async (def: RoleDefinition, index: number): Promise<void> => {
    const handle = await def.start(ctx);
    if (handle.registry) ctx.registry = handle.registry;
    const role = { name: def.name, handle };
    rank.set(role, index);
    const after = started.findIndex((r) => (rank.get(r) ?? -1) > index);
    started.splice(after < 0 ? started.length : after, 0, role);
    onStarted(role);
  };
  const settle = async (group: Promise<void>[]): Promise<void> => {
    const failed = (await Promise.allSettled(group)).find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  let group: Promise<void>[] = [];
  for (const [index, def] of table.entries()) {
    if (def.alongsidePrevious !== true) {
      await settle(group);
      group = [];
    }
    group.push(startOne(def, index));
  }
  await settle(group);
}

/** Stops the roles in reverse start order; a role that fails to stop is logged and the others still stop. */
export async function stopRoles(started: readonly StartedRole[], logger: Logger): Promise<void> {
  for (const { name, handle } of [...started].reverse()) {
    try {
      await handle.stop();
    } catch (err) {
      logger.error({ err, role: name }, 'role failed to stop');
    }
  }
}

/** A friendlier message for the usual listen failures (a port in use, a port below 1024). */
export function listenError(err: unknown, what: string, port: number): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE')
    return new GatewayError('config.invalid', `${what} port ${port} is already in use`, { cause: err });
  if (code === 'EACCES')
    return new GatewayError('config.invalid', `no permission to listen on ${what} port ${port}`, {
      cause: err,
    });
  return err;
}
