/** Public surface of the edge: the device endpoint (WebSocket + HTTP long-poll). */
export type { SessionSnapshot } from './device-session.ts';
export { type AuthLimitOptions, DEFAULT_AUTH_LIMITS } from './auth-limiter.ts';
export { type EdgeHandle, type EdgeOptions, enginePayloadLimit, startEdge } from './edge.ts';
export { DEFAULT_EDGE_LIMITS, type EdgeLimitOptions } from './limits.ts';
export { buildReusePortPreload, REUSEPORT_PORTS_ENV, reusePortActive, reusePortEnv } from './reuse-port.ts';
