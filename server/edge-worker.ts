/**
 * Entry module of an edge worker process, forked by the primary (node.ts,
 * EdgeWorkers) with `--internal-edge-worker <index>`. Not through the CLI: a
 * worker then loads the edge and the bus and nothing of the commands (the
 * registry's lmdb, commander), which keeps its idle memory down when a dozen
 * of them run.
 */
import { toGatewayError } from '../device-protocol/errors.ts';
import { runEdgeWorker } from './node.ts';

const index = Number(process.argv[process.argv.indexOf('--internal-edge-worker') + 1]);
try {
  process.exitCode = await runEdgeWorker(index);
} catch (err) {
  // As the CLI reports a failed command: one line on stderr (the primary logs the exit), code 2.
  const gw = toGatewayError(err);
  process.stderr.write(
    `mmgw: ${gw.code === 'internal' && gw.cause instanceof Error ? gw.cause.message : gw.message}\n`,
  );
  process.exitCode = 2;
}
