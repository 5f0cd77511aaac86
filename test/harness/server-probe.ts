/**
 * Readiness of the peers the harness starts: a server is up once a fresh
 * connection reads what it says first (Dovecot's greeting, nats-server's
 * INFO, the features of an XMPP stream), and a start that died ends the wait
 * at once with why.
 */
import { Socket } from 'node:net';
import { eventually } from '../../testing/index.ts';

export interface ServerProbe {
  /** Written once connected (a protocol where the client speaks first). */
  send?: string;
  /** What the bytes read so far say: true up, false some other server, undefined read on. */
  verdict: (received: string) => boolean | undefined;
  /** One connection that says nothing for this long counts as not up; default 2000 ms. */
  silenceMs?: number;
}

/** Whether host:port answers as the probe wants; rejects when the connection fails (refused: not up yet). */
export function answers(host: string, port: number, probe: ServerProbe): Promise<boolean> {
  return new Promise<boolean>((resolve, reject) => {
    const sock = new Socket();
    let received = '';
    const done = (up: boolean) => {
      sock.destroy();
      resolve(up);
    };
    sock.setTimeout(probe.silenceMs ?? 2000, () => done(false));
    sock.on('error', (err) => {
      sock.destroy();
      reject(err);
    });
    sock.on('data', (d) => {
      received += d.toString('latin1');
      const up = probe.verdict(received);
      if (up !== undefined) done(up);
    });
    if (probe.send !== undefined) sock.on('connect', () => sock.write(probe.send!));
    sock.connect(port, host);
  });
}

/** Resolves once host:port answers; fails at once with isDead()'s message when the server died. */
export async function waitForServer(
  what: string,
  host: string,
  port: number,
  probe: ServerProbe,
  options: { timeoutMs: number; intervalMs?: number; isDead?: () => string | undefined },
): Promise<void> {
  const isDead = options.isDead ?? (() => undefined);
  const outcome = await eventually(what, async () => isDead() ?? (await answers(host, port, probe)), {
    timeoutMs: options.timeoutMs,
    intervalMs: options.intervalMs ?? 100,
  });
  if (outcome !== true) throw new Error(outcome);
}
