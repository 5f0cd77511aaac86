/** Public surface of ops: logs, metrics and the /healthz /readyz /metrics endpoint. */
export {
  errorBody,
  httpStatusOf,
  type MetricsSource,
  type OpsHandler,
  type OpsServer,
  type OpsServerOptions,
  type Readiness,
  sendError,
  sendJson,
  startOpsServer,
} from './http.ts';
export {
  createLogger,
  type Logger,
  type LoggerOptions,
  REDACT_PATHS,
  SECRET_KEYS,
  silentLogger,
} from './logger.ts';
export { createMetrics, type MetricsOptions, type MetricsRegistry } from './metrics.ts';
