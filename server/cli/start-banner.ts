/**
 * What `mmgw start` prints on a terminal once the node is up, above the JSON
 * log lines that follow: where devices connect, where the admin UI is, where
 * the data is, and, when no admin user exists yet, the one command that
 * makes one. Only on a terminal: piped output stays JSON lines only.
 */

export interface BannerFacts {
  release: string;
  nodeId: string;
  roles: readonly string[];
  /** Bind addresses and ports; a wildcard bind is shown as the loopback name a local browser can open. */
  host: string;
  devicePort?: number | undefined;
  adminHost: string;
  adminPort: number;
  /** Absolute data directory. */
  data: string;
  /** Admin users in the registry; undefined when this node holds no registry (no admin role here). */
  adminUsers?: number | undefined;
  /** The certificate served (config `tls`): the URLs are wss:// and https:// then. */
  tls?: { subject: string; validTo: string } | undefined;
  /** /metrics and /readyz need a client certificate (tls.opsClientCa). */
  opsClientCerts?: boolean | undefined;
}

function shown(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}

export function startBanner(f: BannerFacts): string {
  const lines = [`mmgw ${f.release} is up: node ${f.nodeId}, roles ${f.roles.join(', ')}`];
  const s = f.tls === undefined ? '' : 's';
  if (f.devicePort !== undefined) {
    const at = `${shown(f.host)}:${f.devicePort}`;
    lines.push(`  devices   ws${s}://${at}/v1/ws  (long-poll: http${s}://${at}/v1/poll)`);
  }
  const admin = `http${s}://${shown(f.adminHost)}:${f.adminPort}`;
  if (f.adminUsers !== undefined) lines.push(`  admin UI  ${admin}/ui/`);
  const guarded = f.opsClientCerts ? ' (client certificate)' : '';
  lines.push(`  health    ${admin}/healthz, metrics ${admin}/metrics${guarded}`);
  if (f.tls !== undefined) {
    lines.push(`  tls       TLS 1.2+, ${f.tls.subject}, valid until ${f.tls.validTo}; reloaded on SIGHUP`);
    if (f.devicePort !== undefined)
      lines.push('            the edge runs the portable engine (the uWebSockets.js build has no TLS)');
  }
  lines.push(`  data      ${f.data}`);
  if (f.adminUsers === 0) {
    lines.push('  no admin user yet; in another terminal, create one (it asks for a password):');
    lines.push(`    npx mmgw admin user add --name admin --role admin --data ${f.data}`);
  }
  return `${lines.join('\n')}\n`;
}
