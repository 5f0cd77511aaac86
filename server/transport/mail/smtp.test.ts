import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { after, test } from 'node:test';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { eventually } from '../../../testing/index.ts';
import { createSmtpTransport, smtpWithin } from './smtp.ts';

// An SMTP server that greets one byte at a time, forever: nodemailer's silence timeouts never fire.
const held = new Set<Socket>();
const server = createServer((socket) => {
  held.add(socket);
  socket.on('error', () => {});
  socket.on('close', () => held.delete(socket));
  const timer = setInterval(() => socket.write('2'), 50);
  socket.on('close', () => clearInterval(timer));
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = (server.address() as { port: number }).port;
after(() => {
  for (const s of held) s.destroy();
  server.close();
});

test('an exchange past its deadline ends with mail.unreachable and its socket destroyed', async () => {
  const smtp = createSmtpTransport(
    { host: 'mail.example.test', port, tls: 'none', user: 'u', password: 'p' },
    { host: 'mail.example.test', address: '127.0.0.1', family: 4, port },
    5000,
  );
  const started = Date.now();
  await assert.rejects(
    smtpWithin(smtp, 300, () => smtp.transport.verify()),
    (err: unknown) =>
      err instanceof GatewayError && err.code === 'mail.unreachable' && err.field === 'smtp.host',
  );
  assert.ok(Date.now() - started < 2000);
  // The server sees the connection go: the gateway holds nothing of it.
  await eventually('the server sees the connection closed', () => held.size === 0);
  smtp.close();
});
