/**
 * Bytes exchanged with the XMPP server, per account, for the usage counters.
 *
 * @xmpp/client has no byte hook, but it exposes the socket it talks through
 * (`entity.socket`) and announces every status change. On each change the
 * meter looks at that socket and, the first time it sees one, counts its
 * 'data' events (in) and what is written to it (out). A socket is attached
 * before 'connect' (plain TCP, or the address @xmpp/resolve settled on) and
 * STARTTLS swaps in the TLS socket right before the stream restarts
 * ('opening'); from then on the bytes counted are the XML inside TLS, as
 * they were before the TLS handshake, never TLS records.
 *
 * Nothing inside the library is replaced: the meter listens to the socket's
 * own 'data' event and wraps that socket's `write`, the one call every byte
 * the library sends goes through. A socket the library lets go takes the
 * meter's listener with it.
 */

type Chunk = { length: number };

/** The part of a socket (net.Socket, @xmpp/tls's wrapper) the meter uses. */
export interface MeteredSocket {
  on(event: 'data', listener: (data: Chunk) => void): unknown;
  write(data: string | Uint8Array, ...rest: any[]): unknown;
}

export interface MeteredEntity {
  readonly socket: MeteredSocket | null;
  on(event: 'status', listener: (status: string) => void): unknown;
}

export interface Traffic {
  bytesIn: number;
  bytesOut: number;
}

export class TrafficMeter {
  #bytesIn = 0;
  #bytesOut = 0;
  readonly #metered = new WeakSet<MeteredSocket>();

  constructor({ entity }: { entity: MeteredEntity }) {
    entity.on('status', () => {
      const socket = entity.socket;
      if (socket && !this.#metered.has(socket)) this.#meter(socket);
    });
  }

  /** Bytes read and written since the last call. */
  take(): Traffic {
    const t = { bytesIn: this.#bytesIn, bytesOut: this.#bytesOut };
    this.#bytesIn = 0;
    this.#bytesOut = 0;
    return t;
  }

  #meter(socket: MeteredSocket): void {
    this.#metered.add(socket);
    socket.on('data', (data) => {
      this.#bytesIn += data.length;
    });
    const write = socket.write;
    socket.write = (data: string | Uint8Array, ...rest: any[]) => {
      this.#bytesOut += typeof data === 'string' ? Buffer.byteLength(data) : data.length;
      return write.call(socket, data, ...rest);
    };
  }
}
