/**
 * sasl-scram-sha-1 (used by @xmpp/client) derives the salted password with
 * 4096–10000 rounds of WebCrypto HMAC, each an awaited importKey + sign: about
 * 1.5 s of CPU per login. A transport node that brings back hundreds of
 * accounts after a restart cannot afford that, so its Hi() (which is exactly
 * PBKDF2-HMAC-SHA1, RFC 5802 §2.2) is replaced by Node's native pbkdf2, run on
 * the libuv thread pool. Same bytes, ~1 ms.
 */
import { pbkdf2 } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

let applied = false;

export function applyScramSpeedup(): void {
  if (applied) return;
  applied = true;
  let bitops: { Hi?: (text: string, salt: Uint8Array, iterations: number) => Promise<Uint8Array> };
  try {
    // Resolved from @xmpp/sasl-scram-sha-1, whose dependency it is.
    const fromXmpp = createRequire(require.resolve('@xmpp/sasl-scram-sha-1/package.json'));
    bitops = fromXmpp('sasl-scram-sha-1/lib/bitops.js');
  } catch {
    return; // layout changed: keep the slow but correct implementation
  }
  if (typeof bitops.Hi !== 'function') return;
  bitops.Hi = (text, salt, iterations) =>
    new Promise((resolve, reject) => {
      pbkdf2(Buffer.from(text, 'utf8'), Buffer.from(salt), iterations, 20, 'sha1', (err, key) =>
        err ? reject(err) : resolve(new Uint8Array(key)),
      );
    });
}
