/**
 * The heartbeat a device is asked for in its Welcome (SPEC.md §5): the edge's
 * configured one, or its profiles' (service profile `policies.heartbeatMs`,
 * else operator profile `heartbeatMs`: the registry picks) for networks where
 * every wake-up costs (fewer Pings) or where a frozen edge must be noticed
 * sooner. The device Pings every heartbeat and calls a carrier dead
 * after 2 silent ones; the edge, hearing the Pings, gives it 2.5 before it
 * closes the carrier, so the device's Pings always arrive in time.
 */

/** Silence for this many of a session's heartbeats closes its carrier on the edge. */
export const EDGE_SILENT_AFTER_HEARTBEATS = 2.5;
/** Bounds of a profile's heartbeat: below, Pings cost more than they find; above, the uWS idle backstop (960 s) is too close. */
export const MIN_PROFILE_HEARTBEAT_MS = 1_000;
export const MAX_PROFILE_HEARTBEAT_MS = 300_000;

/**
 * The heartbeat of a device's session: the profile's, brought within bounds
 * (an operator profile allows up to an hour), when it is a positive whole
 * number (it comes over the bus from the registry: anything else is
 * ignored), else the edge's.
 */
export function sessionHeartbeatMs(fromProfile: unknown, edgeDefaultMs: number): number {
  if (!Number.isInteger(fromProfile) || (fromProfile as number) <= 0) return edgeDefaultMs;
  return Math.min(MAX_PROFILE_HEARTBEAT_MS, Math.max(MIN_PROFILE_HEARTBEAT_MS, fromProfile as number));
}
