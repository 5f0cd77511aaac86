import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/**
 * One prom-client Registry per node (not the global one), so that several
 * nodes in one test process keep their counters apart. Roles register their
 * own metrics into it (the edge: mmgw_edge_sessions and friends); this file
 * adds the process metrics and a node info gauge.
 */

export type { Registry as MetricsRegistry } from 'prom-client';

export interface MetricsOptions {
  nodeId: string;
  roles: string[];
  release?: string;
  /** Process metrics (CPU, RSS, event-loop lag, GC). Default true. */
  processMetrics?: boolean;
}

export function createMetrics(options: MetricsOptions): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ node: options.nodeId });
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
  const info = new Gauge({
    name: 'mmgw_node_info',
    help: 'Constant 1, labelled with the roles and release this node runs.',
    labelNames: ['roles', 'release'],
    registers: [registry],
  });
  info.set({ roles: options.roles.join(','), release: options.release ?? 'dev' }, 1);
  return registry;
}
