import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CredentialCipher } from '../transport/credentials.ts';
import { importResultSealer } from './import-sealer.ts';

test('seals under a key of its own, derived from the credentials key, bound to its context', (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mmgw-sealer-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const key = randomBytes(32);
  const credentialsKey = key.toString('base64');
  const sealer = importResultSealer({ dataDir, key: credentialsKey });
  const sealed = sealer.seal('[["490154203237518","s3cret"]]', 'import:a:1:0');
  assert.ok(!sealed.includes('s3cret'));
  assert.equal(sealer.open(sealed, 'import:a:1:0'), '[["490154203237518","s3cret"]]');
  assert.throws(() => sealer.open(sealed, 'import:b:1:0'));
  // Another node with the same credentials key opens it; the credentials key itself does not.
  assert.equal(
    importResultSealer({ dataDir, key: credentialsKey }).open(sealed, 'import:a:1:0'),
    '[["490154203237518","s3cret"]]',
  );
  assert.throws(() => new CredentialCipher(key).decrypt(sealed, 'import:a:1:0'));
});
