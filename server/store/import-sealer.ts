/**
 * The Sealer of import results: AES-256-GCM (the credentials cipher) under a
 * key derived from the node's credentials key (MMGW_CREDENTIALS_KEY, or
 * `<data>/keys/credentials.key`) for this one purpose, so that opening an
 * import's one-time device secrets never needs, nor could open, an account
 * password sealed with the credentials key itself.
 */
import { hkdfSync } from 'node:crypto';
import { CredentialCipher, type CredentialKeyOptions, loadCredentialKey } from '../transport/credentials.ts';
import type { Sealer } from './import-jobs.ts';

const INFO = 'mmgw import results v1';

export function importResultSealer(o: CredentialKeyOptions): Sealer {
  const key = Buffer.from(hkdfSync('sha256', loadCredentialKey(o), new Uint8Array(0), INFO, 32));
  const cipher = new CredentialCipher(key);
  return {
    seal: (plain, context) => cipher.encrypt(plain, context),
    open: (sealed, context) => cipher.decrypt(sealed, context),
  };
}
