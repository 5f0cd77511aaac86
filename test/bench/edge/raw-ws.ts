/**
 * The smallest WebSocket client that the edge benchmark needs: a plain TCP
 * socket, a hand-written upgrade request and a frame parser for what a
 * server sends (unmasked binary, close, ping).
 *
 * Why not `ws`: the load generator shares two cores with the server it
 * measures, so every microsecond and every kilobyte it spends per connection
 * is taken from the server's figures. This client keeps one small object per
 * connection and masks with the all-zero key (RFC 6455 §5.3 asks for a mask
 * bit and a key, servers do not inspect the key), so a payload is sent as is.
 */
import net from 'node:net';

export const OPCODE_BINARY = 0x2;
export const OPCODE_CLOSE = 0x8;
export const OPCODE_PING = 0x9;
export const OPCODE_PONG = 0xa;

const UPGRADE_DONE = Buffer.from('\r\n\r\n');
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

/** Callbacks of one connection; kept on a shared object so that a connection holds only a reference. */
export interface RawWsHandler {
  /** The 101 arrived; frames may be sent now. */
  onOpen(conn: RawWs): void;
  onMessage(conn: RawWs, payload: Buffer): void;
  /** Called once, whatever ended the connection (`code` is a Node error code, 'close_frame', 'eof', 'upgrade' …). */
  onClose(conn: RawWs, reason: string): void;
}

export interface RawWsTarget {
  host: string;
  port: number;
  path: string;
  /** Source address to bind (one 127.0.0.x per load-generator process spreads the ephemeral ports). */
  localAddress?: string;
}

export class RawWs {
  socket: net.Socket;
  open = false;
  closed = false;
  /** Bytes of an incomplete frame (or of the upgrade response) carried to the next chunk. */
  private pending: Buffer | null = null;
  /** Free slot for the owner (the session state of the load generator). */
  owner: unknown;

  /**
   * `localPort`: bind this source port explicitly. bind() with port 0 makes
   * the kernel search the port range for a free port, which gets slower the
   * more ports of that address are taken (over 1 ms per connect at 10,000);
   * a load process that owns its source address can simply count.
   */
  constructor(
    target: RawWsTarget,
    private readonly handler: RawWsHandler,
    owner: unknown,
    localPort?: number,
  ) {
    this.owner = owner;
    const socket = net.connect({
      host: target.host,
      port: target.port,
      localAddress: target.localAddress,
      ...(localPort === undefined ? {} : { localPort }),
      // Reads land in one buffer shared by every connection of the process (no
      // allocation and no stream machinery per read); onData copies what it keeps.
      onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array) => this.onRead(n, buf) },
    });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('connect', () => {
      socket.write(
        `GET ${target.path} HTTP/1.1\r\nHost: ${target.host}:${target.port}\r\nUpgrade: websocket\r\n` +
          'Connection: Upgrade\r\nSec-WebSocket-Key: bW1ndy1iZW5jaC1rZXkxMg==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
    });
    socket.on('error', (err: NodeJS.ErrnoException) => this.finish(err.code ?? 'error'));
    socket.on('close', () => this.finish('eof'));
  }

  send(payload: Uint8Array): void {
    if (this.closed) return;
    this.socket.write(frame(OPCODE_BINARY, payload));
  }

  /** Polite close: a close frame, then FIN. */
  close(): void {
    if (this.closed) return;
    if (this.open) this.socket.write(frame(OPCODE_CLOSE, EMPTY));
    this.socket.end();
  }

  /** Abrupt loss of the link, as when a handset drops off the network: RST, no close frame. */
  reset(): void {
    if (this.closed) return;
    this.socket.resetAndDestroy();
    this.finish('reset_by_client');
  }

  private finish(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.open = false;
    this.pending = null;
    this.socket.destroy();
    this.handler.onClose(this, reason);
  }

  private onRead(n: number, buf: Uint8Array): boolean {
    this.onData(Buffer.from(buf.buffer, buf.byteOffset, n));
    return true;
  }

  private onData(chunk: Buffer): void {
    const buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = null;
    let off = 0;
    if (!this.open) {
      const end = buf.indexOf(UPGRADE_DONE);
      if (end < 0) {
        if (buf.length > 8192) {
          this.finish('upgrade_too_long');
          return;
        }
        this.pending = Buffer.from(buf);
        return;
      }
      // "HTTP/1.1 101 Switching Protocols": status at bytes 9..11.
      if (buf.toString('latin1', 9, 12) !== '101') {
        this.finish(`upgrade_${buf.toString('latin1', 9, 12)}`);
        return;
      }
      off = end + 4;
      this.open = true;
      this.handler.onOpen(this);
      if (this.closed) return;
    }
    while (buf.length - off >= 2) {
      const b0 = buf[off]!;
      const b1 = buf[off + 1]!;
      let len = b1 & 0x7f;
      let header = 2;
      if (len === 126) {
        if (buf.length - off < 4) break;
        len = buf.readUInt16BE(off + 2);
        header = 4;
      } else if (len === 127) {
        if (buf.length - off < 10) break;
        len = Number(buf.readBigUInt64BE(off + 2));
        header = 10;
      }
      if (b1 & 0x80) {
        this.finish('masked_server_frame');
        return;
      }
      if (buf.length - off < header + len) break;
      const payload = buf.subarray(off + header, off + header + len);
      off += header + len;
      const opcode = b0 & 0x0f;
      if ((b0 & 0x80) === 0 || opcode === 0) {
        this.finish('fragmented_frame');
        return;
      }
      if (opcode === OPCODE_BINARY) this.handler.onMessage(this, payload);
      else if (opcode === OPCODE_PING) {
        this.socket.write(frame(OPCODE_PONG, payload));
      } else if (opcode === OPCODE_CLOSE) {
        this.socket.end();
        this.finish('close_frame');
        return;
      } else if (opcode !== OPCODE_PONG) {
        this.finish(`opcode_${opcode}`);
        return;
      }
      if (this.closed) return;
    }
    // Copy the rest so that a small remainder does not pin a large chunk in memory.
    if (off < buf.length) this.pending = Buffer.from(buf.subarray(off));
  }
}

const EMPTY = new Uint8Array(0);

/**
 * One masked client frame with the all-zero masking key (the payload goes out
 * unchanged), header and payload in one buffer so that it leaves in one write.
 */
export function frame(opcode: number, payload: Uint8Array): Buffer {
  const len = payload.length;
  const header = len < 126 ? 6 : len < 65536 ? 8 : 14;
  const out = Buffer.allocUnsafe(header + len);
  out[0] = 0x80 | opcode;
  if (len < 126) out[1] = 0x80 | len;
  else if (len < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(len), 2);
  }
  out.fill(0, header - 4, header);
  out.set(payload, header);
  return out;
}
