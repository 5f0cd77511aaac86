/**
 * The one registry of error codes shared by the device protocol, the REST API
 * and the logs. Codes are stable strings: a handset, a script or an alert rule
 * may match on them, so never rename one; add new ones instead.
 *
 * No `node:` imports here: this file runs in browsers and handsets too.
 */

export const ERROR_CODES = {
  // Framing and codec: the bytes themselves are wrong.
  'protocol.bad_frame': 'The frame could not be decoded.',
  'protocol.frame_too_large': 'The frame is larger than the negotiated limit.',
  'protocol.limit': 'A string, list, map or nesting limit inside the frame was exceeded.',
  'protocol.unsupported_version': 'The protocol version is not supported by this gateway.',
  'protocol.unknown_kind': 'The frame kind is unknown.',
  'protocol.bad_state': 'The frame is not valid in the current session state.',
  // Authentication and authorisation of a device.
  'auth.unknown_device': 'No device with this IMEI is provisioned.',
  'auth.bad_secret': 'The device secret is wrong.',
  'auth.disabled': 'The device is disabled by the operator.',
  'auth.bad_token': 'The token is malformed or its signature is wrong.',
  'auth.token_expired': 'The token has expired; authenticate again.',
  'auth.resume_failed': 'The session cannot be resumed; start a new one.',
  'auth.rate_limited': 'Too many authentication attempts; wait before retrying.',
  // Session life.
  'session.replaced': 'A newer connection of the same device took over this session.',
  'session.moved': 'The session moved to another carrier (WebSocket or long-poll).',
  'session.rate_limited': 'The device sent frames faster than its limit.',
  'session.backpressure': 'The device read too slowly; queued bytes passed the limit. Resume to continue.',
  'session.heartbeat_timeout': 'Nothing was heard from the device within the heartbeat window.',
  'session.draining': 'This gateway node is draining; reconnect (to another node).',
  'session.expired': 'The session expired.',
  'session.closed': 'The session was closed.',
  'session.logout': 'The device ended its session (logout).',
  // Requests routed to a backend role.
  'request.unknown_method': 'The request method is unknown.',
  'request.bad_input': 'The request body is not valid for this method.',
  'request.timeout': 'The backend did not answer in time; retry with the same request id.',
  'request.unavailable': 'No backend node is available for this device right now; retry.',
  'request.duplicate': 'A request with this id is still in progress.',
  // Bus (inter-role) failures.
  'bus.timeout': 'A bus request timed out.',
  'bus.no_responders': 'Nobody is listening on the bus subject.',
  'bus.closed': 'The bus is closed.',
  'bus.bad_message': 'A bus message could not be decoded.',
  // Registry and provisioning.
  'registry.invalid_imei': 'The IMEI must be 15 digits with a valid Luhn check digit.',
  'registry.invalid_imsi': 'The IMSI must be 14 or 15 digits.',
  'registry.invalid_field': 'A field of the record is invalid.',
  'registry.duplicate': 'A record with this key already exists.',
  'registry.not_found': 'No such record.',
  'registry.import_rejected': 'The import was rejected; nothing was written.',
  // Configuration.
  'config.invalid': 'The configuration is invalid.',
  // Admin REST API.
  'api.bad_input': 'The admin API request is not valid; error.field names the input at fault.',
  'api.unauthorized': 'The admin API needs a valid bearer token (log in), or the name or password is wrong.',
  'api.forbidden': 'The admin role of this user may not do this.',
  'api.not_found': 'No such admin API route or record.',
  'api.conflict': 'The record changed meanwhile, or is still referred to.',
  'api.too_large': 'The request body is larger than the admin API accepts.',
  // Mail accounts (IMAP/SMTP) bridged by the transport role.
  'mail.auth_failed': 'The mail server rejected the user name or password.',
  'mail.unreachable': 'The mail server could not be reached (refused, timed out or unknown host).',
  'mail.tls_failed': 'The TLS handshake with the mail server failed (certificate or protocol).',
  'mail.recipient_refused': 'The SMTP server refused one or more recipients.',
  'mail.too_large': 'The message is larger than the SMTP server accepts.',
  'mail.send_failed': 'The SMTP server did not accept the message.',
  'mail.not_found': 'No such mail account, folder or message.',
  'mail.bad_cursor': 'The sync cursor is malformed or belongs to another folder.',
  'mail.server_error': 'The mail server answered with an error.',
  'mail.malformed_message': 'The message could not be parsed.',
  // Chat accounts (XMPP) bridged by the transport role.
  'im.auth_failed': 'The XMPP server rejected the JID or password.',
  'im.unknown_domain': 'The XMPP domain does not resolve (DNS) or is not served by that server.',
  'im.unreachable': 'The XMPP server could not be reached (refused, timed out or dropped).',
  'im.not_found': 'No such chat account on this device.',
  'im.send_failed': 'The XMPP server did not acknowledge the message in time; resend with the same clientId.',
  'im.bad_cursor': 'The archive id is unknown to the server (expired or from another account).',
  'im.server_error': 'The XMPP server answered a request with an error.',
  // Service profiles (admin reference data): which services a device may use, presets, policies.
  'service.not_allowed': "The device's service profile does not include this service (mail or im).",
  'service.unknown_preset':
    "The device's service profile has no account preset with this label for this service.",
  'policy.attachment_too_large':
    "The attachment is larger than the service profile's maxAttachmentBytes policy allows.",
  'policy.destination_not_allowed':
    "The gateway's outbound policy does not allow connecting to this server (address or port).",
  // Secrets at rest.
  'credentials.unreadable': 'Stored credentials could not be decrypted (wrong key or tampered data).',
  // Transcoder (images and bodies shrunk for the handset); the original stays offered with its size.
  'transcode.unsupported_format':
    'The attachment is not an image format the transcoder accepts (by its bytes).',
  'transcode.bad_input': 'The image is empty, truncated or corrupt.',
  'transcode.too_large': 'The source is larger than the transcoder accepts.',
  'transcode.too_many_pixels': 'The image has more pixels (all frames counted) than the transcoder accepts.',
  'transcode.over_budget': 'No variant of the image fits the byte budget.',
  'transcode.busy': 'Every transcoder is busy; retry later.',
  'transcode.timeout': 'Transcoding took longer than its time limit.',
  // Anything else.
  internal: 'An internal error occurred.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

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
