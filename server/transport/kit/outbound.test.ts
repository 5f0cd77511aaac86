import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GatewayError } from '../../../device-protocol/errors.ts';
import { assertAccountRoom, outboundPolicy } from './outbound.ts';

const refused = (err: unknown) =>
  err instanceof GatewayError && err.code === 'policy.destination_not_allowed';

test('without settings the policy is default-deny: loopback and private refused, public on mail ports only', async () => {
  const policy = outboundPolicy(undefined, async () => [{ address: '93.184.216.34', family: 4 }]);
  await assert.rejects(policy.check('mail', '127.0.0.1', 143), refused);
  await assert.rejects(policy.check('mail', '192.168.1.10', 993), refused);
  await assert.rejects(policy.check('mail', 'mail.example.test', 8080), refused);
  assert.equal((await policy.check('mail', 'mail.example.test', 587)).address, '93.184.216.34');
});

test('allowDestinations and allowPorts open what the operator names', async () => {
  const policy = outboundPolicy({ allowDestinations: ['127.0.0.0/8'], allowPorts: [2525] }, async () => [
    { address: '93.184.216.34', family: 4 },
  ]);
  assert.equal((await policy.check('mail', '127.0.0.1', 1143)).address, '127.0.0.1');
  assert.equal((await policy.check('mail', 'mail.example.test', 2525)).port, 2525);
  await assert.rejects(policy.check('mail', '::1', 143), refused);
});

test('assertAccountRoom refuses at the cap with policy.too_many_accounts', () => {
  assertAccountRoom(9, 10);
  assert.throws(
    () => assertAccountRoom(10, 10),
    (err: unknown) => err instanceof GatewayError && err.code === 'policy.too_many_accounts',
  );
});
