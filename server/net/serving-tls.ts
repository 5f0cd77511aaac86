/**
 * TLS of the gateway's own listeners: the device port (wss:// and https://
 * long-poll, portable engine) and the admin port (API, UI, ops endpoint).
 *
 * One ServingTls per process that listens (the primary; each edge worker
 * loads its own from the same files). It reads the certificate chain and the
 * key, and the CA of the ops endpoint's client certificates when set, checks
 * that they go together (node:tls refuses a key that does not match), and
 * gives the servers their options: TLS 1.2 and 1.3 only. reload() (SIGHUP)
 * reads the files again and hands each server a new secure context
 * (tls.Server#setSecureContext): new connections get the new certificate,
 * open ones keep theirs, so no session drops. Files that do not load (a
 * rotation caught half-written, a key of another certificate) leave the old
 * context serving and the reload says why.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { RequestListener } from 'node:http';
import { createServer, type Server as HttpsServer, type ServerOptions } from 'node:https';
import { Gauge, type Registry } from 'prom-client';
import { createSecureContext, type SecureContextOptions, type TLSSocket } from 'node:tls';
import { GatewayError } from '../../device-protocol/errors.ts';

/** The files, as config `tls` holds them (absolute paths). */
export interface TlsFiles {
  cert: string;
  key: string;
  /** CA of the client certificates the ops endpoint asks for (/metrics, /readyz). */
  opsClientCa?: string | undefined;
}

/** Older protocol versions are refused in the handshake. */
const TLS_MIN_VERSION = 'TLSv1.2';

/** What the logs and the start banner say about the certificate served. */
export interface CertificateFacts {
  subject: string;
  issuer: string;
  validTo: string;
  /** SHA-256 fingerprint, colon-separated hex, as `openssl x509 -fingerprint -sha256` prints it. */
  fingerprint256: string;
}

/** Which listener: the ops endpoint's asks for a client certificate when a client CA is set. */
export type TlsListener = 'device' | 'admin';

interface Material {
  cert: Buffer;
  key: Buffer;
  clientCa?: Buffer;
  facts: CertificateFacts;
}

function readFile(what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new GatewayError('config.invalid', `${what}: cannot read ${path}: ${(err as Error).message}`, {
      field: what,
    });
  }
}

function certificate(what: string, path: string, pem: Buffer): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new GatewayError(
      'config.invalid',
      `${what}: ${path} holds no PEM certificate: ${(err as Error).message}`,
      {
        field: what,
      },
    );
  }
}

function load(files: TlsFiles): Material {
  const cert = readFile('tls.cert', files.cert);
  const key = readFile('tls.key', files.key);
  const clientCa =
    files.opsClientCa === undefined ? undefined : readFile('tls.opsClientCa', files.opsClientCa);
  const leaf = certificate('tls.cert', files.cert, cert);
  try {
    createSecureContext({ cert, key, ...(clientCa ? { ca: clientCa } : {}) });
  } catch (err) {
    throw new GatewayError(
      'config.invalid',
      `tls.key: ${files.key} does not go with the certificate ${files.cert}: ${(err as Error).message}`,
      { field: 'tls.key' },
    );
  }
  if (clientCa !== undefined) certificate('tls.opsClientCa', files.opsClientCa ?? '', clientCa);
  return {
    cert,
    key,
    ...(clientCa ? { clientCa } : {}),
    facts: {
      subject: leaf.subject.replace(/\n/g, ', '),
      issuer: leaf.issuer.replace(/\n/g, ', '),
      validTo: new Date(leaf.validTo).toISOString(),
      fingerprint256: leaf.fingerprint256,
    },
  };
}

export class ServingTls {
  #material: Material;
  readonly #servers: { server: HttpsServer; listener: TlsListener }[] = [];

  private constructor(
    readonly files: TlsFiles,
    material: Material,
  ) {
    this.#material = material;
  }

  /** Reads and checks the files; throws GatewayError config.invalid naming the one at fault. */
  static load(files: TlsFiles): ServingTls {
    return new ServingTls(files, load(files));
  }

  get facts(): CertificateFacts {
    return this.#material.facts;
  }

  /** Whether the ops endpoint asks for client certificates. */
  get opsClientCerts(): boolean {
    return this.#material.clientCa !== undefined;
  }

  #context(listener: TlsListener): SecureContextOptions {
    const m = this.#material;
    return {
      cert: m.cert,
      key: m.key,
      minVersion: TLS_MIN_VERSION,
      ...(listener === 'admin' && m.clientCa ? { ca: m.clientCa } : {}),
    };
  }

  /** Options of https.createServer for this listener. */
  serverOptions(
    listener: TlsListener,
  ): SecureContextOptions & { requestCert?: boolean; rejectUnauthorized?: boolean } {
    return {
      ...this.#context(listener),
      // The admin port serves the API and the UI too, which need no client certificate: one is
      // asked for but not required in the handshake; the ops routes check it (opsClientAllowed).
      ...(listener === 'admin' && this.opsClientCerts
        ? { requestCert: true, rejectUnauthorized: false }
        : {}),
    };
  }

  /**
   * An HTTPS server for `listener` with these TLS options beside its own
   * (`options`: timeouts), which reload() updates until it closes.
   */
  createServer(listener: TlsListener, options: ServerOptions, onRequest: RequestListener): HttpsServer {
    const server = createServer({ ...options, ...this.serverOptions(listener) }, onRequest);
    this.attach(server, listener);
    server.once('close', () => this.detach(server));
    return server;
  }

  /** A server reload() updates. */
  attach(server: HttpsServer, listener: TlsListener): void {
    this.#servers.push({ server, listener });
  }

  detach(server: HttpsServer): void {
    const i = this.#servers.findIndex((s) => s.server === server);
    if (i >= 0) this.#servers.splice(i, 1);
  }

  /**
   * Reads the files again and gives every attached server the new context.
   * Throws GatewayError config.invalid (and changes nothing) when they do not load.
   */
  reload(): CertificateFacts {
    const material = load(this.files);
    this.#material = material;
    for (const { server, listener } of this.#servers) server.setSecureContext(this.#context(listener));
    return material.facts;
  }
}

/**
 * Whether a request on the admin port may read an ops route: always without a client CA;
 * with one, only over a connection whose client certificate it signed.
 */
export function opsClientAllowed(tls: ServingTls | undefined, socket: unknown): boolean {
  if (tls === undefined || !tls.opsClientCerts) return true;
  return (socket as Partial<TLSSocket>).authorized === true;
}

/**
 * mmgw_tls_certificate_expiry_seconds: the Unix time the served certificate expires (as the
 * last load or reload left it), for an alert before it does.
 */
export function registerTlsMetrics(registry: Registry, tls: ServingTls): void {
  new Gauge({
    name: 'mmgw_tls_certificate_expiry_seconds',
    help: 'Unix time at which the certificate the gateway serves (config tls.cert) expires.',
    registers: [registry],
    collect() {
      this.set(Math.floor(Date.parse(tls.facts.validTo) / 1000));
    },
  });
}
