import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCliPiece, tempDir } from '../../testing/index.ts';
import { withRegistry } from './device/options.ts';
import { cliActor } from './io.ts';
import { addOperatorCommands } from './operator.ts';

test('operator add writes the record the API reads, audited in the same change; list shows it', async (t) => {
  const data = join(tempDir(t), 'data');
  const run = (...args: string[]) => runCliPiece(addOperatorCommands, [...args, '--data', data]);
  assert.equal((await run('add', 'demo', '--name', 'Demo Telecom')).stdout, 'added operator demo\n');
  const added = JSON.parse((await run('add', 'east', '--json')).stdout);
  assert.deepEqual([added.id, added.name, added.revision], ['east', 'east', 1]);
  assert.match((await run('list')).stdout, /^demo +Demo Telecom\neast +east\n$/);
  await assert.rejects(run('add', 'demo'), { code: 'registry.duplicate' });
  await assert.rejects(run('add', 'no spaces'), { code: 'request.bad_input', field: 'id' });
  await withRegistry({ data }, async (r) => {
    assert.deepEqual(r.getRef('operators', 'demo')?.data, { name: 'Demo Telecom' });
    const entries = r.auditOutbox.list().map((e) => [e.action, e.target, e.actor]);
    assert.deepEqual(entries, [
      ['operators.create', 'operators:demo', cliActor().actor],
      ['operators.create', 'operators:east', cliActor().actor],
    ]);
  });
});
