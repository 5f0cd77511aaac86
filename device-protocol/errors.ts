/**
 * The one registry of error codes shared by the device protocol, the REST API
 * and the logs. Codes are stable strings: a handset, a script or an alert rule
 * may match on them, so never rename one; add new ones instead.
 *
 * Each entry says what the code means, its HTTP status (REST API and ops
 * endpoint), whether the same operation may be retried later, and whether a
 * handset may see it. `presentError` is the one place an error becomes what
 * an audience sees: a handset never gets a server-internal code (`bus.*`,
 * `registry.*`, `config.*`, `api.*`) nor the message of an internal error.
 *
 * No `node:` imports here: this file runs in browsers and handsets too.
 */

export interface ErrorSpec {
  /** The default message: what happened, for a person. */
  readonly message: string;
  /** HTTP status when it answers a REST or ops request. */
  readonly status: number;
  /** May the caller retry the same operation (same ids) later? */
  readonly retryable: boolean;
  /** May a handset see this code? Server-internal codes are translated first (presentError). */
  readonly handset: boolean;
}

const RETRY = true;

function handset(message: string, status: number, retryable = false): ErrorSpec {
  return { message, status, retryable, handset: true };
}

function internalOnly(message: string, status: number, retryable = false): ErrorSpec {
  return { message, status, retryable, handset: false };
}

export const ERRORS = {
  // Framing and codec: the bytes themselves are wrong.
  'protocol.bad_frame': handset('The frame could not be decoded.', 400),
  'protocol.frame_too_large': handset('The frame is larger than the negotiated limit.', 400),
  'protocol.limit': handset('A string, list, map or nesting limit inside the frame was exceeded.', 400),
  'protocol.unsupported_version': handset('The protocol version is not supported by this gateway.', 400),
  'protocol.unknown_kind': handset('The frame kind is unknown.', 400),
  'protocol.bad_state': handset('The frame is not valid in the current session state.', 400),
  // Authentication and authorisation of a device.
  'auth.unknown_device': handset('No device with this IMEI is provisioned.', 401),
  'auth.bad_secret': handset('The device secret is wrong.', 401),
  'auth.disabled': handset('The device is disabled by the operator.', 403),
  'auth.bad_token': handset('The token is malformed or its signature is wrong.', 401),
  'auth.token_expired': handset('The token has expired; authenticate again.', 401),
  'auth.resume_failed': handset('The session cannot be resumed; start a new one.', 410),
  'auth.rate_limited': handset('Too many authentication attempts; wait before retrying.', 429, RETRY),
  // Session life.
  'session.replaced': handset('A newer connection of the same device took over this session.', 410),
  'session.moved': handset('The session moved to another carrier (WebSocket or long-poll).', 410),
  'session.rate_limited': handset('The device sent frames faster than its limit.', 429, RETRY),
  'session.backpressure': handset(
    'The device read too slowly; queued bytes passed the limit. Resume to continue.',
    410,
  ),
  'session.heartbeat_timeout': handset('Nothing was heard from the device within the heartbeat window.', 410),
  'session.draining': handset('This gateway node is draining; reconnect (to another node).', 503, RETRY),
  'session.expired': handset('The session expired.', 410),
  'session.closed': handset('The session was closed.', 410),
  'session.logout': handset('The device ended its session (logout).', 410),
  'session.busy': handset(
    'The session is being handed between gateway nodes; Resume again shortly.',
    503,
    RETRY,
  ),
  // Requests routed to a backend role.
  'request.unknown_method': handset('The request method is unknown.', 404),
  'request.bad_input': handset('The request body is not valid for this method.', 400),
  'request.timeout': handset(
    'The backend did not answer in time; retry with the same request id.',
    504,
    RETRY,
  ),
  'request.unavailable': handset(
    'No backend node is available for this device right now; retry.',
    503,
    RETRY,
  ),
  'request.duplicate': handset('A request with this id is still in progress.', 409),
  // Bus (inter-role) failures.
  'bus.timeout': internalOnly('A bus request timed out.', 504, RETRY),
  'bus.no_responders': internalOnly('Nobody is listening on the bus subject.', 503, RETRY),
  'bus.closed': internalOnly('The bus is closed.', 503, RETRY),
  'bus.bad_message': internalOnly('A bus message could not be decoded.', 500),
  // Registry and provisioning.
  'registry.invalid_imei': internalOnly('The IMEI must be 15 digits with a valid Luhn check digit.', 400),
  'registry.invalid_imsi': internalOnly('The IMSI must be 14 or 15 digits.', 400),
  'registry.invalid_field': internalOnly('A field of the record is invalid.', 400),
  'registry.duplicate': internalOnly('A record with this key already exists.', 409),
  'registry.not_found': internalOnly('No such record.', 404),
  'registry.import_rejected': internalOnly('The import was rejected; nothing was written.', 422),
  'registry.conflict': internalOnly(
    'The record changed meanwhile (compare-and-set); read it again and retry.',
    409,
    RETRY,
  ),
  'registry.unavailable': internalOnly(
    'The shared state (NATS JetStream) cannot be reached; retry.',
    503,
    RETRY,
  ),
  'registry.single_node_only': internalOnly(
    'This runs on a single-node (lmdb) registry only, not on a cluster registry.',
    409,
  ),
  'registry.bad_record': internalOnly('A stored record or key could not be read.', 500),
  // Configuration.
  'config.invalid': internalOnly('The configuration is invalid.', 400),
  'config.bad_sessions_file': internalOnly(
    'The saved edge sessions file is corrupt or not a record this gateway reads; it was set aside.',
    422,
  ),
  // Admin REST API.
  'api.bad_input': internalOnly(
    'The admin API request is not valid; error.field names the input at fault.',
    400,
  ),
  'api.unauthorized': internalOnly(
    'The admin API needs a valid bearer token (log in), or the name or password is wrong.',
    401,
  ),
  'api.forbidden': internalOnly('The admin role of this user may not do this.', 403),
  'api.not_found': internalOnly('No such admin API route or record.', 404),
  'api.conflict': internalOnly('The record changed meanwhile, or is still referred to.', 409),
  'api.too_large': internalOnly('The request body is larger than the admin API accepts.', 413),
  // Mail accounts (IMAP/SMTP) bridged by the transport role.
  'mail.auth_failed': handset('The mail server rejected the user name or password.', 502),
  'mail.unreachable': handset(
    'The mail server could not be reached (refused, timed out or unknown host).',
    502,
  ),
  'mail.tls_failed': handset('The TLS handshake with the mail server failed (certificate or protocol).', 502),
  'mail.recipient_refused': handset('The SMTP server refused one or more recipients.', 422),
  'mail.too_large': handset('The message is larger than the SMTP server accepts.', 413),
  'mail.send_failed': handset('The SMTP server did not accept the message.', 502),
  'mail.not_found': handset('No such mail account, folder or message.', 404),
  'mail.bad_cursor': handset('The sync cursor is malformed or belongs to another folder.', 400),
  'mail.server_error': handset('The mail server answered with an error.', 502),
  'mail.malformed_message': handset('The message could not be parsed.', 422),
  'mail.too_complex': handset(
    'The message has more MIME parts or deeper nesting than the gateway reads; it stays listed.',
    422,
  ),
  // Chat accounts (XMPP) bridged by the transport role.
  'im.auth_failed': handset('The XMPP server rejected the JID or password.', 502),
  'im.unknown_domain': handset(
    'The XMPP domain does not resolve (DNS) or is not served by that server.',
    502,
  ),
  'im.unreachable': handset('The XMPP server could not be reached (refused, timed out or dropped).', 502),
  'im.not_found': handset('No such chat account on this device.', 404),
  'im.send_failed': handset(
    'The XMPP server did not acknowledge the message in time; resend with the same clientId.',
    502,
  ),
  'im.bad_cursor': handset('The archive id is unknown to the server (expired or from another account).', 400),
  'im.server_error': handset('The XMPP server answered a request with an error.', 502),
  // Service profiles (admin reference data): which services a device may use, presets, policies.
  'service.not_allowed': handset(
    "The device's service profile does not include this service (mail or im).",
    400,
  ),
  'service.unknown_preset': handset(
    "The device's service profile has no account preset with this label for this service.",
    400,
  ),
  'policy.attachment_too_large': handset(
    "The attachment is larger than the service profile's maxAttachmentBytes policy allows.",
    413,
  ),
  'policy.destination_not_allowed': handset(
    "The gateway's outbound policy does not allow connecting to this server (address or port).",
    403,
  ),
  'policy.too_many_accounts': handset(
    'The device has as many accounts as the gateway allows per device; remove one first.',
    403,
  ),
  // Wake-up channels (push.register and friends, issue 14).
  'push.kind_not_enabled': handset('This kind of wake-up channel is not enabled on this gateway.', 400),
  'push.endpoint_unreachable': handset("The push endpoint's host name could not be resolved.", 400),
  'push.too_many': handset(
    'The device has as many wake-up channels as the gateway allows per device; remove one first.',
    403,
  ),
  'push.not_found': handset('The device has no wake-up channel with this id.', 404),
  // Secrets at rest.
  'credentials.unreadable': handset(
    'Stored credentials could not be decrypted (wrong key or tampered data).',
    500,
  ),
  // Transcoder (images and bodies shrunk for the handset); the original stays offered with its size.
  'transcode.unsupported_format': handset(
    'The attachment is not an image format the transcoder accepts (by its bytes).',
    415,
  ),
  'transcode.bad_input': handset('The image is empty, truncated or corrupt.', 400),
  'transcode.too_large': handset('The source is larger than the transcoder accepts.', 413),
  'transcode.too_many_pixels': handset(
    'The image has more pixels (all frames counted) than the transcoder accepts.',
    413,
  ),
  'transcode.over_budget': handset('No variant of the image fits the byte budget.', 422),
  'transcode.busy': handset('Every transcoder is busy; retry later.', 503),
  'transcode.timeout': handset('Transcoding took longer than its time limit.', 504),
  // Anything else.
  internal: handset('An internal error occurred.', 500),
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** The default message of every code (the registry's `message`), for code that only needs the text. */
export const ERROR_CODES: { readonly [C in ErrorCode]: string } = Object.fromEntries(
  Object.entries(ERRORS).map(([code, spec]) => [code, spec.message]),
) as { readonly [C in ErrorCode]: string };

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERROR_CODES, code);
}

export interface GatewayErrorOptions {
  /** May the caller retry the same operation (with the same ids) later? */
  retryable?: boolean;
  /** Hint in milliseconds before retrying. */
  retryAfterMs?: number;
  /** The field or argument at fault, when there is one. */
  field?: string;
  cause?: unknown;
}

/** The one error class every layer throws and every boundary turns into a frame, a status or a log record. */
export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly retryAfterMs?: number;
  readonly field?: string;

  constructor(code: ErrorCode, message?: string, options: GatewayErrorOptions = {}) {
    super(message ?? ERROR_CODES[code], options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
    if (options.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
    if (options.field !== undefined) this.field = options.field;
  }

  toJSON(): { code: ErrorCode; message: string; field?: string; retryable: boolean } {
    return {
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      ...(this.field === undefined ? {} : { field: this.field }),
    };
  }
}

/** Codec failures: always returned (never thrown) by the decoder. */
export class ProtocolError extends GatewayError {}

/** Wraps anything into a GatewayError without losing the original as `cause`. */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  return new GatewayError('internal', ERROR_CODES.internal, { cause: err });
}

/**
 * What a handset sees instead of a server-internal code: a bus that timed out
 * or found nobody is a backend that did not answer (retry the same request);
 * anything else internal is `internal`.
 */
function handsetCodeOf(code: ErrorCode): ErrorCode {
  if (ERRORS[code].handset) return code;
  if (code === 'bus.timeout') return 'request.timeout';
  if (code === 'bus.no_responders' || code === 'bus.closed') return 'request.unavailable';
  return 'internal';
}

/** Who an error is shown to: a handset (frames) or an operator (REST API, ops endpoint, CLI). */
export type ErrorAudience = 'handset' | 'operator';

/** An error as one audience sees it: the fields of an Error frame, a JSON error body and a log record. */
export interface PresentedError {
  code: ErrorCode;
  message: string;
  /** HTTP status (REST answers). */
  status: number;
  retryable: boolean;
  retryAfterMs?: number;
  field?: string;
}

/**
 * The one way an error becomes a frame, an HTTP answer or a log record.
 * Anything that is not a GatewayError is `internal`, and the message of an
 * internal error is always the registry's (a stack or a peer's words never
 * leave through it); for a handset, server-internal codes are translated and
 * their messages replaced.
 */
export function presentError(err: unknown, audience: ErrorAudience): PresentedError {
  const g = toGatewayError(err);
  const code = audience === 'handset' ? handsetCodeOf(g.code) : g.code;
  const spec = ERRORS[code];
  const message = code === 'internal' || code !== g.code ? spec.message : g.message;
  return {
    code,
    message,
    status: spec.status,
    retryable: code !== g.code ? spec.retryable : g.retryable || spec.retryable,
    ...(g.retryAfterMs === undefined ? {} : { retryAfterMs: g.retryAfterMs }),
    ...(g.field === undefined || code !== g.code ? {} : { field: g.field }),
  };
}

/** May the caller retry an operation that failed with this code (the registry's default)? */
export function isRetryableCode(code: string): boolean {
  return isErrorCode(code) && ERRORS[code].retryable;
}

/**
 * HTTP status of a long-poll answer that carries a fatal Error or a Bye
 * (SPEC.md §4.2). It is part of the device protocol, fixed for handsets
 * already deployed (they read the frames of 400, 401, 410 and 429 answers):
 * 401 for every auth.* refusal but a lost session (410), 400 protocol, 429
 * rate limits, 503 when the gateway cannot serve it now, 410 for a session
 * the device can no longer use from this carrier.
 */
export function longPollStatusOf(code: string): number {
  if (code === 'auth.resume_failed') return 410;
  if (code.endsWith('.rate_limited')) return 429;
  if (code.startsWith('auth.')) return 401;
  if (code.startsWith('protocol.')) return 400;
  if (code === 'session.draining' || code === 'session.busy' || code === 'internal') return 503;
  if (isErrorCode(code) && !ERRORS[code].handset) return 503;
  return 410;
}
