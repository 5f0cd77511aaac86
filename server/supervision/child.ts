/**
 * The child side of the primary's processes: an edge worker
 * (`--internal-edge-worker <index>`, edge-worker.ts) and a supervised role
 * (`--internal-role <role>`, role-worker.ts). Each waits for the primary's
 * init (the parsed config: a child never loads the config schema), runs its
 * node, answers metrics, and stops when the primary asks or goes away (a
 * primary killed with -9 must not leave orphans holding ports or lmdb).
 */
import cluster from 'node:cluster';
import { GatewayError, toGatewayError } from '../../device-protocol/errors.ts';
import type { Config } from '../config.ts';
import { type RunningNode, startNode } from '../node.ts';
import { createLogger } from '../ops/logger.ts';
import { CHILD_TAG, SUPERVISED_ROLES, type SupervisedRole, sendTagged, tagged } from './child-entry.ts';
import type { EdgeWorkerMessage } from './edge-workers.ts';
import type { RoleWorkerMessage } from './supervisor.ts';

/** Resolves with the primary's init message, after saying hello (a message sent before that would be lost). */
function initFromPrimary<M extends { type: string }>(): Promise<Extract<M, { type: 'init' }>> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown) => {
      const m = tagged<M>(message);
      if (m?.type === 'init') {
        process.off('message', onMessage);
        resolve(m as Extract<M, { type: 'init' }>);
      }
    };
    process.on('message', onMessage);
    sendTagged(process, { type: 'hello' });
  });
}

/** Inside an edge worker process: wait for the primary's init, run the edge, answer metrics and drain. */
export async function runEdgeWorker(index: number): Promise<number> {
  if (!cluster.isWorker || typeof process.send !== 'function') {
    throw new GatewayError('internal', '--internal-edge-worker is for the processes the primary forks');
  }
  const init = await initFromPrimary<EdgeWorkerMessage>();
  const config: Config = { ...init.config, port: init.port, nodeId: init.nodeId, roles: ['edge'] };
  const node = await startNode(config, { worker: { index } });
  const send = (m: EdgeWorkerMessage) => sendTagged(process, m);
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= node
      .drain()
      .then(() => node.close())
      .finally(() => process.disconnect?.());
    return stopping;
  };
  process.on('message', (message: unknown) => {
    const m = tagged<EdgeWorkerMessage>(message);
    if (m?.type === 'metrics')
      void node.metrics.getMetricsAsJSON().then((data) => send({ type: 'metrics', id: m.id, data }));
    else if (m?.type === 'drain') void stop();
    else if (m?.type === 'reload-tls') node.reloadTls();
  });
  // The primary forwards its SIGHUP; one sent to this process itself (its group) reloads too, not ends it.
  if (config.tls !== undefined) process.on('SIGHUP', () => node.reloadTls());
  // The primary going away (crash, kill -9) must not leave orphans holding the port.
  process.on('disconnect', () => void stop());
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
  send({ type: 'ready', port: node.devicePort ?? init.port });
  await new Promise<void>((resolve) => process.once('disconnect', resolve));
  await stop();
  return 0;
}

/** How often a role process tells the primary what it serves (for the primary's heartbeat), when that changed. */
const SERVED_REPORT_MS = 1000;

function servedReporter(node: RunningNode, send: (m: RoleWorkerMessage) => void): NodeJS.Timeout {
  let last = '';
  const report = () => {
    const served = node.served();
    const key = JSON.stringify(served ?? null);
    if (served === undefined || key === last) return;
    last = key;
    send({ type: 'served', served });
  };
  report();
  const timer = setInterval(report, SERVED_REPORT_MS);
  timer.unref();
  return timer;
}

/** How the CLI prints a failed command, so that the primary can fail its start with the same words. */
function printable(err: unknown): { code: string; message: string } {
  const gw = toGatewayError(err);
  return {
    code: gw.code,
    message: gw.code === 'internal' && gw.cause instanceof Error ? gw.cause.message : gw.message,
  };
}

/** Runs a child's main function as the CLI runs a command: its number is the exit code; a throw is one line on stderr, code 2. */
export async function runChildMain(main: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await main();
  } catch (err) {
    // The primary logs the exit; this line says why.
    process.stderr.write(`mmgw: ${printable(err).message}\n`);
    process.exitCode = 2;
  }
}

/**
 * Inside a supervised role's process: run the one role on the primary's bus
 * until the primary says stop or goes away. Signals are the primary's to
 * handle (see supervisor.ts); an uncaught exception ends this process only,
 * logged, and the primary starts another.
 */
export async function runRoleWorker(role: string): Promise<number> {
  if (typeof process.send !== 'function' || !SUPERVISED_ROLES.includes(role as SupervisedRole)) {
    throw new GatewayError('internal', '--internal-role is for the processes the primary forks');
  }
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {});
  const send = (m: RoleWorkerMessage) => sendTagged(process, m);
  let node: RunningNode | undefined;
  let stopAsked = false;
  let stopping: Promise<void> | undefined;
  const stop = (): void => {
    stopAsked = true;
    if (node === undefined) return;
    stopping ??= node.close().finally(() => {
      process.disconnect?.();
      // Everything is closed; should a library still hold a handle, do not hang on it.
      setTimeout(() => process.exit(0), 5000).unref();
    });
  };
  process.on('message', (message: unknown) => {
    const m = tagged<RoleWorkerMessage>(message);
    if (m?.type === 'metrics' && node)
      void node.metrics.getMetricsAsJSON().then((data) => send({ type: 'metrics', id: m.id, data }));
    else if (m?.type === 'stop') stop();
  });
  process.on('disconnect', stop);

  const init = await initFromPrimary<RoleWorkerMessage>();
  const logger = createLogger({ level: init.config.log.level, nodeId: init.nodeId }).child({ process: role });
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, `uncaught exception: the ${role} process ends (the primary starts another)`);
    logger.flush(() => process.exit(70));
    setTimeout(() => process.exit(70), 1000);
  });
  try {
    node = await startNode(
      { ...init.config, nodeId: init.nodeId, roles: [init.role] },
      { logger, child: { role: init.role, registryLocal: init.registryLocal } },
    );
  } catch (err) {
    const { code, message } = printable(err);
    logger.error({ err }, `the ${role} role failed to start`);
    logger.flush();
    // Disconnect only once the message is out: closing the channel would drop it.
    await new Promise<void>((resolve) =>
      process.send?.({ [CHILD_TAG]: { type: 'failed', code, message } }, undefined, {}, () => resolve()),
    );
    process.disconnect?.();
    return 2;
  }
  if (stopAsked) stop();
  else send({ type: 'ready' });
  const reportServed = servedReporter(node, send);
  await node.closed;
  clearInterval(reportServed);
  await stopping;
  return 0;
}
