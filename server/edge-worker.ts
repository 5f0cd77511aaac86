/**
 * Entry module of an edge worker process, forked by the primary
 * (supervision/edge-workers.ts) with `--internal-edge-worker <index>`. Not
 * through the CLI: a worker then loads the edge and the bus and nothing of the
 * commands (the registry's lmdb, commander), which keeps its idle memory down
 * when a dozen of them run.
 */
import { runChildMain, runEdgeWorker } from './supervision/child.ts';

const index = Number(process.argv[process.argv.indexOf('--internal-edge-worker') + 1]);
await runChildMain(() => runEdgeWorker(index));
