/**
 * The REST client of the console: bearer token from the login, JSON in and
 * out, errors as ApiError with the stable code and the field at fault (so a
 * form can put the message beside the input that caused it). The token only
 * ever travels in the Authorization header: live streams are opened with a
 * single-use stream ticket (streamEvents).
 */

export type Role = 'admin' | 'operator' | 'viewer';

export interface Session {
  token: string;
  expiresAt: number;
  user: { name: string; role: Role };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

const STORAGE_KEY = 'mmgw.session';
export const API = '/api/v1';

let session: Session | undefined = load();
const listeners = new Set<(s: Session | undefined) => void>();

function load(): Session | undefined {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    if (!raw) return undefined;
    const s = JSON.parse(raw) as Session;
    return s.expiresAt > Date.now() ? s : undefined;
  } catch {
    return undefined;
  }
}

export function currentSession(): Session | undefined {
  return session;
}

export function setSession(s: Session | undefined): void {
  session = s;
  if (s) sessionStorage.setItem(STORAGE_KEY, JSON.stringify(s));
  else sessionStorage.removeItem(STORAGE_KEY);
  for (const l of listeners) l(s);
}

export function onSession(listener: (s: Session | undefined) => void): void {
  listeners.add(listener);
}

/** Admin changes anything, operator manages devices, viewer reads reports and the monitor. */
export function can(
  what: 'devices' | 'write-devices' | 'reference' | 'write-reference' | 'audit' | 'drain' | 'users',
): boolean {
  const role = session?.user.role;
  if (role === 'admin') return true;
  if (role === 'operator')
    return what === 'devices' || what === 'write-devices' || what === 'reference' || what === 'audit';
  return false;
}

export type Query = Record<string, string | number | boolean | undefined | null>;

export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query))
    if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

export interface RequestOptions {
  method?: string;
  query?: Query;
  /** JSON-encoded unless it is a string (sent as `contentType`). */
  body?: unknown;
  contentType?: string;
  /** More request headers (e.g. Idempotency-Key). */
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

async function raw(path: string, options: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
  if (session) headers.authorization = `Bearer ${session.token}`;
  let body: BodyInit | undefined;
  if (options.body !== undefined) {
    if (typeof options.body === 'string') {
      body = options.body;
      headers['content-type'] = options.contentType ?? 'text/plain';
    } else {
      body = JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
    }
  }
  const res = await fetch(withQuery(API + path, options.query), {
    method: options.method ?? 'GET',
    headers,
    body,
    signal: options.signal,
  });
  if (!res.ok) {
    let code = 'request.failed';
    let message = `${res.status} ${res.statusText}`;
    let field: string | undefined;
    try {
      const err = (await res.json()).error;
      if (err) {
        code = err.code ?? code;
        message = err.message ?? message;
        field = err.field;
      }
    } catch {}
    // An expired or revoked token: back to the login page.
    if (res.status === 401 && path !== '/auth/login') setSession(undefined);
    throw new ApiError(res.status, code, message, field);
  }
  return res;
}

export async function api<T = any>(path: string, options: RequestOptions = {}): Promise<T> {
  const res = await raw(path, options);
  if (res.status === 204) return undefined as T;
  const type = res.headers.get('content-type') ?? '';
  return (type.includes('json') ? await res.json() : await res.text()) as T;
}

/** Fetches with the token and saves the answer as a file (a plain link cannot carry the Authorization header). */
export async function download(path: string, query: Query, filename: string): Promise<void> {
  const res = await raw(path, { query });
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * Follows a Server-Sent Events stream with EventSource, which cannot send the
 * Authorization header: a single-use ticket for the stream is asked for
 * first (POST <path>-ticket) and goes in the URL instead of the token. Calls
 * onEvent for each event named in `events` until aborted (resolves) or the
 * stream fails or ends (rejects: EventSource would reconnect with a ticket
 * already used, so the caller opens a new stream, with a new ticket).
 */
export async function streamEvents(
  path: string,
  query: Query,
  events: readonly string[],
  onEvent: (data: string, event: string) => void,
  signal: AbortSignal,
  /** Called once the server has accepted the stream (from then on nothing stored is missed). */
  onOpen?: () => void,
): Promise<void> {
  const { url } = await api<{ url: string }>(`${path}-ticket`, { method: 'POST', signal });
  if (signal.aborted) return;
  const params = new URLSearchParams(withQuery('', query).slice(1));
  const source = new EventSource(params.size > 0 ? `${url}&${params}` : url);
  return new Promise<void>((resolve, reject) => {
    const close = () => {
      source.close();
      signal.removeEventListener('abort', aborted);
    };
    const aborted = () => {
      close();
      resolve();
    };
    signal.addEventListener('abort', aborted);
    source.addEventListener('open', () => onOpen?.());
    for (const name of events)
      source.addEventListener(name, (e) => onEvent((e as MessageEvent<string>).data, name));
    source.addEventListener('error', () => {
      close();
      reject(new ApiError(0, 'request.failed', 'the live stream ended'));
    });
  });
}
