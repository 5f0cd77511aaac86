/**
 * Encryption at rest of account secrets (mail and IM passwords).
 *
 * AES-256-GCM with a 32-byte node key taken from MMGW_CREDENTIALS_KEY (base64)
 * or `<dataDir>/keys/credentials.key`, which is generated (0600) on first use.
 * The sealed form is a self-describing string so that a later release can
 * change algorithm or key without guessing:
 *
 *   mmgwc1.<keyId>.<iv b64url>.<tag b64url>.<ciphertext b64url>
 *
 * keyId (8 hex chars of SHA-256 of the key) tells "wrong key" apart from
 * "tampered" in the error. An optional context string (e.g. the account id)
 * is bound as additional authenticated data, so a sealed secret copied onto
 * another record does not decrypt. Nothing here ever logs a secret or a key.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { GatewayError } from '../../device-protocol/errors.ts';
import { createPrivateFileOnce, readFileIfThere } from '../store/data-dir.ts';

const PREFIX = 'mmgwc1';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface CredentialKeyOptions {
  dataDir: string;
  /**
   * The key in base64, as MMGW_CREDENTIALS_KEY gives it (config `credentialsKey`; the CLI reads the
   * environment itself); absent or empty: the key file.
   */
  key?: string | undefined;
  logger?: Pick<Logger, 'info' | 'warn'>;
}

/** Loads the node's credentials key, generating the key file on first use. */
export function loadCredentialKey(opts: CredentialKeyOptions): Buffer {
  const given = opts.key;
  if (given !== undefined && given !== '') {
    const key = Buffer.from(given.trim(), 'base64');
    if (key.length !== KEY_BYTES) {
      throw new GatewayError(
        'config.invalid',
        `MMGW_CREDENTIALS_KEY must be ${KEY_BYTES} bytes in base64 (got ${key.length} bytes)`,
        { field: 'MMGW_CREDENTIALS_KEY' },
      );
    }
    return key;
  }
  const dir = join(opts.dataDir, 'keys');
  const file = join(dir, 'credentials.key');
  const existing = readKeyFile(file);
  if (existing) return existing;

  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (createPrivateFileOnce(file, `${randomBytes(KEY_BYTES).toString('base64')}\n`)) {
    opts.logger?.info(
      { keyFile: file },
      'generated a new credentials key; back it up (or set MMGW_CREDENTIALS_KEY): stored secrets are unreadable without it',
    );
  }
  const key = readKeyFile(file);
  if (!key) throw new GatewayError('config.invalid', `credentials key file ${file} is unreadable`);
  return key;
}

function readKeyFile(file: string): Buffer | undefined {
  const text = readFileIfThere(file);
  if (text === undefined) return undefined;
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== KEY_BYTES) {
    throw new GatewayError(
      'config.invalid',
      `credentials key file ${file} does not hold ${KEY_BYTES} bytes of base64`,
      {
        field: 'credentials.key',
      },
    );
  }
  return key;
}

/** Seals and opens secrets with one node key. */
export class CredentialCipher {
  readonly keyId: string;
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== KEY_BYTES)
      throw new GatewayError('config.invalid', `credentials key must be ${KEY_BYTES} bytes`);
    this.#key = Buffer.from(key);
    this.keyId = createHash('sha256').update(key).digest('hex').slice(0, 8);
  }

  static open(opts: CredentialKeyOptions): CredentialCipher {
    return new CredentialCipher(loadCredentialKey(opts));
  }

  encrypt(secret: string, context = ''): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad(context));
    const ct = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return [PREFIX, this.keyId, b64(iv), b64(tag), b64(ct)].join('.');
  }

  decrypt(sealed: string, context = ''): string {
    const parts = typeof sealed === 'string' ? sealed.split('.') : [];
    if (parts.length !== 5 || parts[0] !== PREFIX) {
      throw new GatewayError('credentials.unreadable', 'sealed secret has an unknown format or version');
    }
    // Exactly five parts, checked above.
    const [, keyId, ivText, tagText, ctText] = parts as [string, string, string, string, string];
    if (keyId !== this.keyId) {
      throw new GatewayError(
        'credentials.unreadable',
        `secret was sealed with another key (${keyId}, this node has ${this.keyId})`,
      );
    }
    const iv = Buffer.from(ivText, 'base64url');
    const tag = Buffer.from(tagText, 'base64url');
    if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) {
      throw new GatewayError('credentials.unreadable', 'sealed secret is truncated');
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(aad(context));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(Buffer.from(ctText, 'base64url')), decipher.final()]).toString(
        'utf8',
      );
    } catch {
      // Deliberately no cause: OpenSSL's message carries nothing useful and we never echo input.
      throw new GatewayError(
        'credentials.unreadable',
        'sealed secret failed authentication (tampered or wrong context)',
      );
    }
  }

  /** Keeps the key out of logs and inspection. */
  toJSON(): { keyId: string } {
    return { keyId: this.keyId };
  }
}

function aad(context: string): Buffer {
  return Buffer.from(`${PREFIX}:${context}`, 'utf8');
}

function b64(buf: Buffer): string {
  return buf.toString('base64url');
}
