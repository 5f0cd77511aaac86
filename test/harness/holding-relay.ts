/**
 * A TCP relay in front of a peer (SMTP, IMAP, XMPP) that can freeze one side
 * of the conversation, to land a kill -9 of the gateway at an exact point:
 *
 * - `holdMarker`: while set, the client chunk containing it and everything the
 *   client sends after it on that connection are swallowed (the peer waits
 *   for data that never comes: the SMTP final dot, an APPEND literal);
 * - `holdReplies`: while set, every connection that receives peer data from
 *   then on gets none of it anymore (the peer took a command, its answer never
 *   reaches the gateway: an XMPP stream-management ack).
 * Connections opened after a hold was cleared pass everything.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export class HoldingRelay {
  holdMarker: string | undefined;
  holdReplies = false;
  /** Connections on which a hold took effect so far. */
  held = 0;
  port = 0;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly upstreamPort: number,
    private readonly upstreamHost = '127.0.0.1',
  ) {
    this.server = createServer((client) => {
      const upstream = createConnection(this.upstreamPort, this.upstreamHost);
      this.sockets.add(client).add(upstream);
      let holdingClient = false;
      let holdingReplies = false;
      upstream.on('data', (d: Buffer) => {
        if (!holdingReplies && this.holdReplies) {
          holdingReplies = true;
          this.held++;
        }
        if (!holdingReplies) client.write(d);
      });
      client.on('data', (d: Buffer) => {
        if (!holdingClient && this.holdMarker && d.toString('latin1').includes(this.holdMarker)) {
          holdingClient = true;
          this.held++;
        }
        if (!holdingClient) upstream.write(d);
      });
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('close', end).on('error', end);
      upstream.on('close', end).on('error', end);
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
