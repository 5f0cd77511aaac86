/**
 * Entry module of a supervised role's process (transport, transcoder),
 * forked by the primary (supervision/supervisor.ts) with `--internal-role
 * <role>`. Like edge-worker.ts, not through the CLI: the process loads its
 * role and the bus, not the commands.
 */
import { runChildMain, runRoleWorker } from './supervision/child.ts';

const role = process.argv[process.argv.indexOf('--internal-role') + 1] ?? '';
await runChildMain(() => runRoleWorker(role));
