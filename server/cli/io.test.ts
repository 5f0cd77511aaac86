import assert from 'node:assert/strict';
import { hostname, userInfo } from 'node:os';
import { test } from 'node:test';
import { cliActor } from './io.ts';

test('the CLI acts as cli:<os user> from this host, in the role cli', () => {
  assert.deepEqual(cliActor(), { actor: `cli:${userInfo().username}`, role: 'cli', address: hostname() });
});
