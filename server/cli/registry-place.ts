/**
 * Which registry a command-line tool works on (`mmgw device|operator|admin`,
 * and `mmgw registry` without --data or --bus), from the same configuration
 * as `mmgw start`: the config file (--config, MMGW_CONFIG), the environment
 * and the flags --data and --bus. With a NATS bus (cluster mode) it is the
 * cluster's registry in JetStream KV, the one every admin node serves; else
 * the lmdb registry of the data directory.
 *
 * On a cluster the data directory still holds what is the node's own: the
 * audit entries of the tool's changes (the admin role running on that
 * directory moves them into its audit log, as on a single node) and its
 * import jobs. The tool connects to NATS before it opens anything, so an
 * unreachable NATS ends it with registry.unavailable and nothing written,
 * not even a directory; and it does not move the directory's own lmdb
 * records into the cluster (the admin node of that directory does, once).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, Option } from 'commander';
import { GatewayError } from '../../device-protocol/errors.ts';
import { type Config, loadConfig } from '../config.ts';
import { Registry } from '../store/registry.ts';
import { isClusterMode, stateReplicas, stateServers } from '../store/shared/cluster.ts';
import { NatsKvSharedState } from '../store/shared/nats-kv.ts';
import { type CliIo, processIo } from './io.ts';

/** The flags that say where the registry is; absent ones come from the config and the environment. */
export interface PlaceOptions {
  data?: string;
  config?: string;
  bus?: string;
}

export type RegistryPlace =
  | { kind: 'lmdb'; data: string; credentialsKey?: string }
  | { kind: 'cluster'; data: string; servers: string[]; replicas: number; credentialsKey?: string };

/** How long a tool waits for NATS and for the registry's tables before it gives up. */
const CONNECT_TIMEOUT_MS = 5000;
const LOAD_TIMEOUT_MS = 15_000;

export function dataOption(): Option {
  return new Option(
    '--data <dir>',
    'data directory (env MMGW_DATA; default ./data): its lmdb registry, or on a cluster the audit entries and import jobs of this node',
  );
}

export function configOption(): Option {
  return new Option('--config <file>', 'JSON config file, as for mmgw start (env MMGW_CONFIG)');
}

export function busOption(): Option {
  return new Option(
    '--bus <urls>',
    'nats://host:port[,…]: the cluster registry in JetStream KV (env MMGW_BUS; default inproc: the lmdb registry)',
  );
}

/** Resolves the place from the options and the configuration (a bad config is config.invalid, naming the key). */
export function registryPlace(o: PlaceOptions, env: NodeJS.ProcessEnv = process.env): RegistryPlace {
  const config: Config = loadConfig({
    ...(o.config === undefined ? {} : { file: o.config }),
    env,
    flags: {
      ...(o.data === undefined ? {} : { data: o.data }),
      ...(o.bus === undefined ? {} : { bus: o.bus }),
    },
  });
  const key = config.credentialsKey === undefined ? {} : { credentialsKey: config.credentialsKey };
  if (!isClusterMode(config)) return { kind: 'lmdb', data: config.data, ...key };
  return {
    kind: 'cluster',
    data: config.data,
    servers: stateServers(config),
    replicas: stateReplicas(config),
    ...key,
  };
}

/** The registry named for a person: which store, and where. */
export function describePlace(p: RegistryPlace): string {
  return p.kind === 'lmdb'
    ? `the lmdb registry in ${join(p.data, 'registry')}`
    : `the cluster registry in NATS JetStream KV (${p.servers.join(',')}; ${p.replicas} replica${p.replicas === 1 ? '' : 's'})`;
}

export interface OpenedRegistry {
  registry: Registry;
  close(): Promise<void>;
}

/**
 * Opens the place's registry. `mustExist` (read and change commands) refuses a
 * data directory without an lmdb registry; on a cluster the registry is there
 * whatever the directory holds.
 */
export async function openRegistryAt(p: RegistryPlace, mustExist = false): Promise<OpenedRegistry> {
  if (p.kind === 'lmdb') {
    const registry = await Registry.open(p.data, { mustExist });
    return { registry, close: () => registry.close() };
  }
  const state = await connectCluster(p);
  try {
    const registry = await Registry.open(p.data, { shared: state, adopt: false });
    return {
      registry,
      async close() {
        try {
          await registry.close();
        } finally {
          await state.close();
        }
      },
    };
  } catch (err) {
    await state.close().catch(() => undefined);
    throw unreachable(p, err);
  }
}

/** The cluster's shared state for one command; a NATS that cannot be reached is registry.unavailable. */
export async function connectCluster(
  p: Extract<RegistryPlace, { kind: 'cluster' }>,
): Promise<NatsKvSharedState> {
  try {
    return await NatsKvSharedState.connect({
      servers: p.servers,
      replicas: p.replicas,
      name: 'mmgw-cli',
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      loadTimeoutMs: LOAD_TIMEOUT_MS,
    });
  } catch (err) {
    throw unreachable(p, err);
  }
}

function unreachable(p: Extract<RegistryPlace, { kind: 'cluster' }>, err: unknown): unknown {
  if (!(err instanceof GatewayError) || err.code !== 'registry.unavailable') return err;
  const cause = err.cause instanceof Error ? err.cause.message : err.message;
  return new GatewayError(
    'registry.unavailable',
    `cannot reach the cluster registry on NATS ${p.servers.join(',')}: ${cause}; nothing was changed (is NATS up with JetStream, and is the bus right: --bus, MMGW_BUS or the config's "bus"?)`,
    { cause: err, retryable: true, field: 'bus' },
  );
}

/**
 * Runs one command on the registry its options name, then closes it. On a
 * cluster, a change whose audit entry no admin node will relay (no admin role
 * ever ran on this data directory) is said on stderr.
 */
export async function withPlacedRegistry<T>(
  o: PlaceOptions,
  fn: (r: Registry) => Promise<T>,
  mustExist = false,
  io: CliIo = processIo,
): Promise<T> {
  const place = registryPlace(o);
  const { registry, close } = await openRegistryAt(place, mustExist);
  try {
    const result = await fn(registry);
    if (place.kind === 'cluster' && !existsSync(join(place.data, 'records'))) {
      await registry.auditOutbox.committed();
      const waiting = registry.auditOutbox.list().length;
      if (waiting > 0)
        io.err(
          `mmgw: ${waiting} audit ${waiting === 1 ? 'entry waits' : 'entries wait'} in ${place.data}, where no admin node runs: run this on an admin node's data directory to have changes in the audit log at once\n`,
        );
    }
    return result;
  } finally {
    await close();
  }
}

/**
 * Gives every command under `root` that takes --data also --config and --bus
 * (after --data in its help): where it finds its registry.
 */
export function withPlaceOptions(root: Command): Command {
  for (const command of root.commands) {
    if (command.options.some((o) => o.long === '--data'))
      command.addOption(configOption()).addOption(busOption());
    withPlaceOptions(command);
  }
  return root;
}
