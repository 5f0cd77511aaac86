/**
 * A throw-away self-signed certificate for the hostile peers' TLS, made by
 * `openssl req -x509` (node:crypto makes keys but no X.509) in a temp
 * directory that is removed at once. One per process, made on first need:
 * only the implicit-TLS option and a tls-stall that forwards part of a real
 * handshake need it.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface ThrowAwayCertificate {
  key: Buffer;
  cert: Buffer;
}

/** Names in the certificate; clients must still opt in (it is self-signed). */
export const CERT_NAMES = ['hostile.test', 'localhost', '127.0.0.1', '::1'] as const;

let made: Promise<ThrowAwayCertificate> | undefined;

export function throwAwayCertificate(): Promise<ThrowAwayCertificate> {
  made ??= generate();
  made.catch(() => {
    made = undefined;
  });
  return made;
}

async function generate(): Promise<ThrowAwayCertificate> {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-hostile-cert-'));
  try {
    const keyPath = join(dir, 'key.pem');
    const certPath = join(dir, 'cert.pem');
    // EC P-256: generated in a few ms, where RSA-2048 takes a noticeable while on a loaded machine.
    await promisify(execFile)(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        keyPath,
        '-out',
        certPath,
        '-days',
        '2',
        '-subj',
        '/CN=hostile.test',
        '-addext',
        'subjectAltName=DNS:hostile.test,DNS:localhost,IP:127.0.0.1,IP:::1',
      ],
      { timeout: 30_000 },
    );
    return { key: readFileSync(keyPath), cert: readFileSync(certPath) };
  } catch (err) {
    throw new Error('could not make a throw-away certificate with openssl (is it installed?)', {
      cause: err,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
