/**
 * The long-poll carrier's fetch when the SDK is given `ca` (PEM CA
 * certificates, e.g. a gateway's private CA) in Node: Node's own fetch takes
 * no CA, so https:// requests go through node:https with an agent that trusts
 * those certificates (as Node's tls `ca` does: instead of its built-in list).
 *
 * No `node:` import: the module is found at run time with
 * process.getBuiltinModule (Node 20.16+, 22.3+), so the browser bundle of the
 * SDK holds nothing of Node. In a browser there is no such function and the
 * platform's trust applies: caFetch returns undefined and `ca` is not used.
 *
 * Only what the poll carrier reads of a Response is provided: status and
 * arrayBuffer().
 */

export type CaCertificates = string | readonly string[];

interface IncomingLike {
  statusCode?: number;
  complete: boolean;
  on(event: 'data', fn: (chunk: Uint8Array) => void): void;
  on(event: 'end' | 'close', fn: () => void): void;
  on(event: 'error', fn: (err: Error) => void): void;
}

interface RequestLike {
  on(event: 'error', fn: (err: Error) => void): void;
  destroy(err?: Error): void;
  end(body?: Uint8Array): void;
}

interface HttpsLike {
  Agent: new (options: { ca: CaCertificates; keepAlive: boolean }) => unknown;
  request(
    url: string,
    options: { method: string; headers: Record<string, string>; agent: unknown },
    onResponse: (res: IncomingLike) => void,
  ): RequestLike;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const c of chunks) length += c.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function abortError(): Error {
  const err = new Error('The operation was aborted');
  err.name = 'AbortError';
  return err;
}

/** A fetch for the poll carrier that trusts `ca` on https:// URLs; undefined outside Node. */
export function caFetch(ca: CaCertificates): typeof fetch | undefined {
  const getBuiltin = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process
    ?.getBuiltinModule;
  if (typeof getBuiltin !== 'function') return undefined;
  const https = getBuiltin('node:https') as HttpsLike;
  // Keep-alive: the held GET and the POSTs reuse their TLS connections instead of a handshake each.
  const agent = new https.Agent({ ca, keepAlive: true });
  const tlsFetch = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const url = String(input);
    if (!url.startsWith('https:')) return globalThis.fetch(input, init);
    return new Promise<Response>((resolve, reject) => {
      const signal = init.signal ?? undefined;
      if (signal?.aborted) {
        reject(abortError());
        return;
      }
      const req = https.request(
        url,
        { method: init.method ?? 'GET', headers: (init.headers ?? {}) as Record<string, string>, agent },
        (res) => {
          const chunks: Uint8Array[] = [];
          res.on('data', (chunk) => chunks.push(chunk));
          res.on('error', reject);
          res.on('close', () => {
            if (!res.complete)
              reject(signal?.aborted ? abortError() : new Error('the connection closed mid-answer'));
          });
          res.on('end', () => {
            const body = concat(chunks);
            resolve({
              status: res.statusCode ?? 0,
              ok: (res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300,
              arrayBuffer: async () => body.buffer,
            } as Response);
          });
        },
      );
      req.on('error', reject);
      signal?.addEventListener('abort', () => req.destroy(abortError()), { once: true });
      req.end(init.body as Uint8Array | undefined);
    });
  };
  return tlsFetch as typeof fetch;
}
