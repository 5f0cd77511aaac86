import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * Structured logs: pino, one JSON object per line on stdout. Secrets never
 * reach a log: every key below is replaced by "[redacted]" at any depth up to
 * four levels (pino's redaction needs explicit paths; deeper objects should
 * not be logged whole). Code must still not put secrets into messages.
 */

export type { Logger } from 'pino';

/** Keys whose values are secret wherever they appear in a log record. */
export const SECRET_KEYS = [
  'secret',
  'password',
  'token',
  'authorization',
  'Authorization',
  'resumeToken',
  'jwtSecret',
  'accessToken',
  'refreshToken',
  'secretHash',
  'passwordHash',
  'cookie',
  'credentials',
];

export const REDACT_PATHS = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`, `*.*.*.${k}`]);

export interface LoggerOptions {
  level?: string;
  /** Bound into every record. */
  nodeId?: string;
  /** Where to write; stdout by default (tests pass a stream). */
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { pid: process.pid, ...(options.nodeId === undefined ? {} : { node: options.nodeId }) },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      // ISO times are what operators grep for; the cost is negligible at our log rates.
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** A logger that drops everything (unit tests, library defaults). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
