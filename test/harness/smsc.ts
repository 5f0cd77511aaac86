/**
 * An SMSC on loopback for the SMS wake-up tests, made with the smpp
 * package's server: it speaks SMPP 3.4 as an operator's SMSC does to an ESME.
 *
 * - bind_transmitter / bind_transceiver: system_id and password checked
 *   (ESME_RINVSYSID, ESME_RINVPASWD, then the connection closed);
 * - submit_sm before a bind: ESME_RINVBNDSTS; after: ESME_ROK with a
 *   message id, or what the test scripted for the destination
 *   (`answer(msisdn, [ESME_RTHROTTLED, …])`, one per submit), or
 *   ESME_RINVDSTADR for a number marked `invalid`;
 * - a delivery receipt (deliver_sm, esm_class 0x04, `id:… stat:DELIVRD …`)
 *   for an accepted submit_sm that asked for one, over a transceiver bind;
 * - enquire_link answered (counted) unless `mute(true)`: a hung SMSC
 *   whose TCP connection stays up; unbind answered;
 * - `drop()`: every connection destroyed, as a failing SMSC or a NAT does.
 *
 *   const smsc = await startSmsc();                  // smsc.port, smsc.systemId, smsc.password
 *   smsc.answer('491701234567', [smpp.errors.ESME_RTHROTTLED]);  smsc.invalid('491709999999');  smsc.drop();
 *   … smsc.received                                  // [{ to, from, text, status, … }]
 */
import type { AddressInfo } from 'node:net';
import smpp, { type PDU, type Session } from 'smpp';

const ERR = smpp.errors;

export interface ReceivedSms {
  /** destination_addr as sent (digits, no plus). */
  to: string;
  from: string;
  sourceTon: number;
  destTon: number;
  text: string;
  registeredDelivery: number;
  /** The validity period asked for, in seconds from the submit (the package decodes it to a Date). */
  validitySeconds: number;
  /** What the SMSC answered (ESME_ROK: accepted, with messageId). */
  status: number;
  messageId?: string;
  at: number;
}

export interface Smsc {
  host: '127.0.0.1';
  port: number;
  systemId: string;
  password: string;
  /** Every submit_sm of a bound ESME, accepted or not. */
  received: ReceivedSms[];
  /** Every bind, with whether it was accepted. */
  binds: { systemId: string; command: string; ok: boolean }[];
  enquireLinks: number;
  /** The bound sessions now. */
  readonly connections: number;
  /** The next submits to `to` (digits) get these statuses, one each, then ESME_ROK again. */
  answer(to: string, statuses: number[]): void;
  /** Every submit to `to` gets ESME_RINVDSTADR. */
  invalid(to: string): void;
  /** Destroys every connection. */
  drop(): void;
  /** While true, enquire_link gets no answer (the link looks up but is dead). */
  mute(on: boolean): void;
  stop(): Promise<void>;
}

function textOf(pdu: PDU): string {
  const raw = pdu.short_message as { message?: unknown } | Buffer | undefined;
  const message = Buffer.isBuffer(raw) ? raw : raw?.message;
  return Buffer.isBuffer(message) ? message.toString('latin1') : String(message ?? '');
}

export async function startSmsc(opts: { systemId?: string; password?: string } = {}): Promise<Smsc> {
  const systemId = opts.systemId ?? 'mmgw';
  const password = opts.password ?? 'Sm5-pw';
  const received: ReceivedSms[] = [];
  const binds: Smsc['binds'] = [];
  const scripted = new Map<string, number[]>();
  const invalid = new Set<string>();
  const sessions = new Set<Session>();
  let nextId = 1;
  let enquireLinks = 0;
  let muted = false;

  const server = smpp.createServer((session) => {
    let bound: string | undefined;
    sessions.add(session);
    session.socket.on('close', () => sessions.delete(session));
    session.on('error', () => session.socket.destroy());
    for (const command of ['bind_transmitter', 'bind_transceiver']) {
      session.on(command, (pdu: PDU) => {
        const ok = pdu.system_id === systemId && pdu.password === password;
        binds.push({ systemId: String(pdu.system_id), command, ok });
        if (!ok) {
          const status = pdu.system_id === systemId ? ERR.ESME_RINVPASWD : ERR.ESME_RINVSYSID;
          session.send(pdu.response({ command_status: status }));
          session.close();
          return;
        }
        bound = command;
        session.send(pdu.response({ system_id: 'test-smsc' }));
      });
    }
    session.on('enquire_link', (pdu: PDU) => {
      if (muted) return;
      enquireLinks++;
      session.send(pdu.response());
    });
    session.on('unbind', (pdu: PDU) => {
      session.send(pdu.response());
      session.close();
    });
    session.on('deliver_sm_resp', () => {});
    session.on('submit_sm', (pdu: PDU) => {
      if (!bound) {
        session.send(pdu.response({ command_status: ERR.ESME_RINVBNDSTS }));
        return;
      }
      const to = String(pdu.destination_addr);
      const status = invalid.has(to) ? ERR.ESME_RINVDSTADR : (scripted.get(to)?.shift() ?? ERR.ESME_ROK);
      const messageId = status === ERR.ESME_ROK ? `m${nextId++}` : undefined;
      received.push({
        to,
        from: String(pdu.source_addr),
        sourceTon: Number(pdu.source_addr_ton),
        destTon: Number(pdu.dest_addr_ton),
        text: textOf(pdu),
        registeredDelivery: Number(pdu.registered_delivery),
        validitySeconds:
          pdu.validity_period instanceof Date
            ? Math.round((pdu.validity_period.getTime() - Date.now()) / 1000)
            : Number.NaN,
        status,
        ...(messageId ? { messageId } : {}),
        at: Date.now(),
      });
      session.send(pdu.response(messageId ? { message_id: messageId } : { command_status: status }));
      if (messageId && (Number(pdu.registered_delivery) & 1) === 1 && bound === 'bind_transceiver') {
        session.deliver_sm({
          source_addr: to,
          destination_addr: String(pdu.source_addr),
          esm_class: 0x04,
          short_message: `id:${messageId} sub:001 dlvrd:001 submit date:2601010000 done date:2601010000 stat:DELIVRD err:000 text:`,
        });
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    host: '127.0.0.1',
    port,
    systemId,
    password,
    received,
    binds,
    get enquireLinks() {
      return enquireLinks;
    },
    get connections() {
      return sessions.size;
    },
    answer: (to, statuses) => scripted.set(to, [...statuses]),
    invalid: (to) => void invalid.add(to),
    drop() {
      for (const s of sessions) s.socket.destroy();
    },
    mute: (on) => {
      muted = on;
    },
    async stop() {
      for (const s of sessions) s.socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
