// The image's HEALTHCHECK: healthy when the node answers /readyz (every role it
// runs can serve) on its ops port. The port is the one the node was started
// with: --admin-port in its command line, else MMGW_ADMIN_PORT, else the
// config file's adminPort, else the default 8081 (server/config.ts order).
import { readFileSync } from 'node:fs';

function fromArgs() {
  // PID 1 is the node (ENTRYPOINT in exec form); its arguments are NUL-separated.
  let args = [];
  try {
    args = readFileSync('/proc/1/cmdline', 'utf8').split('\0');
  } catch {}
  for (const [i, arg] of args.entries()) {
    if (arg === '--admin-port') return args[i + 1];
    if (arg.startsWith('--admin-port=')) return arg.slice('--admin-port='.length);
  }
  return undefined;
}

function fromConfigFile() {
  const file = process.env.MMGW_CONFIG;
  if (!file) return undefined;
  try {
    const port = JSON.parse(readFileSync(file, 'utf8')).adminPort;
    return port === undefined ? undefined : String(port);
  } catch {
    return undefined;
  }
}

const port = fromArgs() ?? process.env.MMGW_ADMIN_PORT ?? fromConfigFile() ?? '8081';
try {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2500) });
  process.exit(res.ok ? 0 : 1);
} catch {
  process.exit(1);
}
