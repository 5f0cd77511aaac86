// The part of the `smpp` package (pure JavaScript, no types of its own) that sms-sender.ts and the test SMSC use.
declare module 'smpp' {
  import type { EventEmitter } from 'node:events';
  import type { Server as NetServer, Socket } from 'node:net';

  /** A decoded PDU: the header, then the command's fields by their SMPP names. */
  export interface PDU {
    command: string;
    command_id: number;
    command_status: number;
    sequence_number: number;
    [field: string]: unknown;
    isResponse(): boolean;
    response(options?: Record<string, unknown>): PDU;
  }

  export class Session extends EventEmitter {
    constructor(options: { socket: Socket });
    socket: Socket;
    send(pdu: PDU, onResponse?: (pdu: PDU) => void): boolean;
    bind_transceiver(options: Record<string, unknown>, onResponse: (pdu: PDU) => void): boolean;
    submit_sm(options: Record<string, unknown>, onResponse: (pdu: PDU) => void): boolean;
    deliver_sm(options: Record<string, unknown>, onResponse?: (pdu: PDU) => void): boolean;
    enquire_link(options: Record<string, unknown>, onResponse: (pdu: PDU) => void): boolean;
    unbind(options: Record<string, unknown>, onResponse?: (pdu: PDU) => void): boolean;
    pause(): void;
    resume(): void;
    close(callback?: () => void): void;
    destroy(callback?: () => void): void;
  }

  export interface Server extends NetServer {
    sessions: Session[];
  }

  export function createServer(listener: (session: Session) => void): Server;

  /** Command status names → values (ESME_ROK, ESME_RTHROTTLED, …). */
  export const errors: Record<string, number> & {
    [K in
      | 'ESME_ROK'
      | 'ESME_RSYSERR'
      | 'ESME_RINVBNDSTS'
      | 'ESME_RINVDSTADR'
      | 'ESME_RINVPASWD'
      | 'ESME_RINVSYSID'
      | 'ESME_RMSGQFUL'
      | 'ESME_RTHROTTLED']: number;
  };

  const smpp: {
    Session: typeof Session;
    createServer: typeof createServer;
    errors: typeof errors;
  };
  export default smpp;
}
