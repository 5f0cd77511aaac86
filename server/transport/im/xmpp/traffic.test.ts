import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { client } from '@xmpp/client';
import { eventually } from '../../../../testing/index.ts';
import { TrafficMeter } from './traffic.ts';

class FakeSocket extends EventEmitter {
  written: unknown[] = [];
  write(data: string | Uint8Array): boolean {
    this.written.push(data);
    return true;
  }
}

class FakeEntity extends EventEmitter {
  socket: FakeSocket | null = null;
  status(status: string): void {
    this.emit('status', status);
  }
}

test('counts what the attached socket reads and what is written to it, from the status change on', () => {
  const entity = new FakeEntity();
  const meter = new TrafficMeter({ entity });
  const tcp = new FakeSocket();
  entity.socket = tcp;
  entity.status('connect');
  tcp.emit('data', Buffer.alloc(100));
  tcp.write('<stream é/>'); // 12 bytes in UTF-8
  tcp.write(new Uint8Array(5));
  assert.deepEqual(tcp.written.length, 2, 'the write still reaches the socket');
  assert.deepEqual(meter.take(), { bytesIn: 100, bytesOut: 17 });
  assert.deepEqual(meter.take(), { bytesIn: 0, bytesOut: 0 });
});

test('a socket is metered once however many status changes see it; a new socket (STARTTLS) is metered too', () => {
  const entity = new FakeEntity();
  const meter = new TrafficMeter({ entity });
  const tcp = new FakeSocket();
  entity.socket = tcp;
  for (const s of ['connect', 'opening', 'open']) entity.status(s);
  tcp.emit('data', Buffer.alloc(10));
  tcp.write('abc');
  // STARTTLS: the TLS socket is attached, then the stream restarts ('opening').
  const tls = new FakeSocket();
  entity.socket = tls;
  entity.status('opening');
  tls.emit('data', Buffer.alloc(7));
  tls.write('de');
  assert.deepEqual(meter.take(), { bytesIn: 17, bytesOut: 5 });
  entity.socket = null;
  entity.status('disconnect');
  assert.deepEqual(meter.take(), { bytesIn: 0, bytesOut: 0 });
});

test('with @xmpp/client over TCP the meter counts exactly the bytes the server saw both ways', async (t) => {
  let serverIn = 0;
  let serverOut = 0;
  let received = '';
  let peer: Socket | undefined;
  const server = createServer((sock) => {
    peer = sock;
    sock.on('error', () => {});
    sock.on('data', (d) => {
      serverIn += d.length;
      received += d.toString('utf8');
      if (serverOut > 0) return;
      const header =
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
        "xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='example.test' version='1.0'>";
      serverOut += Buffer.byteLength(header);
      sock.write(header);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const service = `xmpp://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const xmpp = client({ service, domain: 'example.test' });
  xmpp.reconnect.stop();
  xmpp.on('error', () => {});
  t.after(() => {
    peer?.destroy();
    server.close();
  });
  const meter = new TrafficMeter({ entity: xmpp });
  await xmpp.connect(service);
  await xmpp.open({ domain: 'example.test', lang: 'en' });
  const gotMessage = new Promise<void>((resolve) => xmpp.on('stanza', () => resolve()));
  await xmpp.write('<presence><status>ünïcödé</status></presence>');
  const message = '<message><body>€ 1</body></message>';
  serverOut += Buffer.byteLength(message);
  peer?.write(message);
  await gotMessage;
  await eventually('the server to read the presence', () => received.endsWith('</presence>'));
  assert.deepEqual(meter.take(), { bytesIn: serverOut, bytesOut: serverIn });
});
