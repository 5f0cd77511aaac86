/**
 * A private CA for TLS tests, made with the `openssl` command in a temporary
 * directory: server certificates for loopback (127.0.0.1, ::1, localhost)
 * and client certificates, each signed by the CA. Nothing is checked in.
 *
 *   const ca = makeTestCa();          // ca.cert: the CA's PEM path
 *   const a = ca.server('gw-a');      // { cert, key } paths, CN=gw-a
 *   const c = ca.client('scraper');
 *   ca.remove();
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
}

export interface TestCa extends CertFiles {
  dir: string;
  /** A server certificate for loopback with this common name. */
  server(name: string): CertFiles;
  /** A client certificate (extendedKeyUsage clientAuth) with this common name. */
  client(name: string): CertFiles;
  /** The PEM text of a file. */
  pem(path: string): string;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A new CA (ECDSA P-256, valid 2 days) and its certificate; `name` is its common name. */
export function makeTestCa(name = 'mmgw test CA'): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'mmgw-ca-'));
  const caKey = join(dir, 'ca.key');
  const caCert = join(dir, 'ca.pem');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', caKey], dir);
  openssl(
    ['req', '-x509', '-new', '-key', caKey, '-sha256', '-days', '2', '-subj', `/CN=${name}`, '-out', caCert],
    dir,
  );
  let serial = 1;
  const issue = (cn: string, ext: string): CertFiles => {
    const key = join(dir, `${cn}.key`);
    const csr = join(dir, `${cn}.csr`);
    const cert = join(dir, `${cn}.pem`);
    const extFile = join(dir, `${cn}.ext`);
    writeFileSync(extFile, ext);
    openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key], dir);
    openssl(['req', '-new', '-key', key, '-subj', `/CN=${cn}`, '-out', csr], dir);
    openssl(
      [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        caCert,
        '-CAkey',
        caKey,
        '-set_serial',
        String(serial++),
        '-days',
        '2',
        '-sha256',
        '-extfile',
        extFile,
        '-out',
        cert,
      ],
      dir,
    );
    return { cert, key };
  };
  return {
    dir,
    cert: caCert,
    key: caKey,
    server: (cn) =>
      issue(
        cn,
        'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n',
      ),
    client: (cn) => issue(cn, 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n'),
    pem: (path) => readFileSync(path, 'utf8'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
