import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { GatewayError } from '../../device-protocol/errors.ts';
import { CredentialCipher, loadCredentialKey } from './credentials.ts';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-cred-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function isCode(code: string) {
  return (err: unknown) => err instanceof GatewayError && err.code === code;
}

describe('CredentialCipher', () => {
  const cipher = new CredentialCipher(randomBytes(32));

  test('round-trips secrets, including empty and non-ASCII ones', () => {
    for (const secret of ['', 'hunter2', 'pässwörd ✓ 日本語', 'x'.repeat(10_000)]) {
      const sealed = cipher.encrypt(secret, 'acct-1');
      assert.ok(sealed.startsWith(`mmgwc1.${cipher.keyId}.`));
      assert.ok(!sealed.includes(secret) || secret === '');
      assert.equal(cipher.decrypt(sealed, 'acct-1'), secret);
    }
  });

  test('two seals of the same secret differ (fresh IV)', () => {
    assert.notEqual(cipher.encrypt('same'), cipher.encrypt('same'));
  });

  test('any flipped character of the sealed form is rejected', () => {
    const sealed = cipher.encrypt('top secret', 'ctx');
    const parts = sealed.split('.');
    for (const i of [2, 3, 4]) {
      const p = parts[i];
      assert.ok(p);
      const flipped = (p[0] === 'A' ? 'B' : 'A') + p.slice(1);
      const bad = [...parts.slice(0, i), flipped, ...parts.slice(i + 1)].join('.');
      assert.throws(() => cipher.decrypt(bad, 'ctx'), isCode('credentials.unreadable'));
    }
  });

  test('the context is authenticated', () => {
    const sealed = cipher.encrypt('pw', 'acct-1');
    assert.throws(() => cipher.decrypt(sealed, 'acct-2'), isCode('credentials.unreadable'));
  });

  test('another key, unknown versions and garbage are rejected with a typed error', () => {
    const other = new CredentialCipher(randomBytes(32));
    const sealed = cipher.encrypt('pw');
    assert.throws(() => other.decrypt(sealed), isCode('credentials.unreadable'));
    assert.throws(() => cipher.decrypt(sealed.replace('mmgwc1', 'mmgwc9')), isCode('credentials.unreadable'));
    assert.throws(() => cipher.decrypt('nonsense'), isCode('credentials.unreadable'));
    assert.throws(
      () => cipher.decrypt(sealed.split('.').slice(0, 4).join('.')),
      isCode('credentials.unreadable'),
    );
  });

  test('never shows the key when serialised', () => {
    assert.deepEqual(JSON.parse(JSON.stringify({ cipher })), { cipher: { keyId: cipher.keyId } });
  });
});

describe('loadCredentialKey', () => {
  test('generates a 0600 key file once, logs that it did, and reuses it', (t) => {
    const dataDir = tempDir(t);
    const lines: unknown[] = [];
    const logger = { info: (...a: unknown[]) => lines.push(a), warn: () => {} };
    const k1 = loadCredentialKey({ dataDir, logger });
    assert.equal(k1.length, 32);
    const file = join(dataDir, 'keys', 'credentials.key');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(lines.length, 1);
    assert.ok(!JSON.stringify(lines).includes(readFileSync(file, 'utf8').trim()));
    const k2 = loadCredentialKey({ dataDir, logger });
    assert.ok(k1.equals(k2));
    assert.equal(lines.length, 1);
    // A secret sealed by one opening is readable by the next (a restart).
    const sealed = CredentialCipher.open({ dataDir }).encrypt('pw', 'a');
    assert.equal(CredentialCipher.open({ dataDir }).decrypt(sealed, 'a'), 'pw');
  });

  test('a given key (MMGW_CREDENTIALS_KEY) wins over the file and must be 32 bytes', (t) => {
    const dataDir = tempDir(t);
    const key = randomBytes(32);
    assert.ok(loadCredentialKey({ dataDir, key: key.toString('base64') }).equals(key));
    assert.throws(
      () => loadCredentialKey({ dataDir, key: randomBytes(16).toString('base64') }),
      isCode('config.invalid'),
    );
  });

  test('a corrupt key file stops the start instead of silently making a new key', (t) => {
    const dataDir = tempDir(t);
    loadCredentialKey({ dataDir });
    writeFileSync(join(dataDir, 'keys', 'credentials.key'), 'short\n');
    assert.throws(() => loadCredentialKey({ dataDir }), isCode('config.invalid'));
  });
});
