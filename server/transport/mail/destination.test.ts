import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { DestinationPolicy, type Resolver } from '../../net/destination-policy.ts';
import { mailDestination, tlsServerName } from './destination.ts';

const resolve: Resolver = async (host) => {
  if (host === 'mail.example.test') return [{ address: '93.184.216.34', family: 4 }];
  if (host === 'inside.example.test') return [{ address: '10.1.2.3', family: 4 }];
  throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
};
const policy = new DestinationPolicy({ resolve });
const code = (c: string, field: string) => (err: unknown) =>
  err instanceof GatewayError && err.code === c && err.field === field;

test('a public mail server: connect to the checked address, TLS on the name', async () => {
  const at = await mailDestination(policy, 'imap', { host: 'Mail.Example.Test.', port: 993 });
  assert.equal(at.address, '93.184.216.34');
  assert.equal(at.port, 993);
  assert.equal(tlsServerName(at), 'mail.example.test');
  // An address given as the host: no SNI, the certificate is checked against the address.
  const literal = await mailDestination(policy, 'smtp', { host: '93.184.216.34', port: 465 });
  assert.equal(tlsServerName(literal), undefined);
});

test('refusals name the server and what is wrong; an unknown name is mail.unreachable', async () => {
  await assert.rejects(
    mailDestination(policy, 'imap', { host: 'inside.example.test', port: 993 }),
    code('policy.destination_not_allowed', 'imap.host'),
  );
  await assert.rejects(
    mailDestination(policy, 'smtp', { host: 'mail.example.test', port: 22 }),
    code('policy.destination_not_allowed', 'smtp.port'),
  );
  await assert.rejects(
    mailDestination(policy, 'smtp', { host: 'nowhere.test', port: 587 }),
    (err: unknown) =>
      code('mail.unreachable', 'smtp.host')(err) && !(err as Error).message.includes('nowhere'),
  );
});
