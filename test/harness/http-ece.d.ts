// The part of http_ece (used by the test push service to decrypt payloads) the tests call.
declare module 'http_ece' {
  import type { ECDH } from 'node:crypto';
  export interface DecryptParams {
    version?: 'aes128gcm' | 'aesgcm';
    privateKey?: ECDH;
    authSecret?: string | Buffer;
  }
  export function decrypt(buffer: Buffer, params: DecryptParams): Buffer;
  const ece: { decrypt: typeof decrypt };
  export default ece;
}
