/**
 * The bus: the only way roles talk to each other. Two implementations stand
 * behind this interface: in-process (one process) and NATS (several processes
 * or hosts). Payloads are always encoded to bytes and decoded again, in both,
 * so no role can come to rely on sharing memory with another; binaries a
 * requester hands over (RequestOptions.transfer) are moved by the in-process
 * bus instead, which detaches the sender's views: still nothing is shared.
 *
 * Subjects are dot-separated tokens, NATS style; `*` matches one token and
 * `>` matches the rest (subscribe side only).
 */

export interface BusMessage<T = unknown> {
  subject: string;
  data: T;
  /** Present when the sender waits for an answer. */
  reply?: string;
}

export interface Subscription {
  readonly subject: string;
  unsubscribe(): void;
}

export interface SubscribeOptions {
  /** Queue group: each message goes to one member of the group only. */
  queue?: string;
}

export interface RequestOptions {
  /** Default 5000 ms; a timeout rejects with GatewayError('bus.timeout'). */
  timeoutMs?: number;
  /**
   * Binaries of the payload the requester hands over, like postMessage's
   * transfer list: it must not use them after the call (read what it needs,
   * e.g. byteLength, before). The in-process bus moves those that are the
   * whole of their ArrayBuffer and sit near the top of the payload (a
   * transcoder source) instead of copying them, detaching the requester's
   * views; it copies the rest. NATS and IPC ignore the list (the bytes are
   * sent, the requester's views stay as they were). The receiver sees the same
   * payload either way.
   */
  transfer?: readonly Uint8Array[];
}

/**
 * A handler returns the reply payload for a request (ignored for a publish).
 * Throwing a GatewayError sends it back to the requester as that error (same
 * code and message); anything else becomes 'internal'.
 */
export type BusHandler = (msg: BusMessage) => unknown | Promise<unknown>;

export interface Bus {
  /** Fire and forget. */
  publish(subject: string, data: unknown): void;
  /**
   * Ask and wait for one answer. Rejects with GatewayError: 'bus.no_responders'
   * at once when nobody subscribes to the subject, 'bus.timeout' after
   * timeoutMs, or the handler's own GatewayError.
   */
  request<T = unknown>(subject: string, data: unknown, options?: RequestOptions): Promise<T>;
  subscribe(subject: string, handler: BusHandler, options?: SubscribeOptions): Subscription;
  /** Resolves once everything published so far has left this process. */
  flush(): Promise<void>;
  close(): Promise<void>;
  /**
   * A bus over a network connection (NATS) tells when it loses it (false) and
   * has it back (true): while it is down this node hears nobody, so what it
   * knows from messages (membership) is stale, not gone. Absent: never down.
   * Returns the undo.
   */
  onConnection?(listener: (up: boolean) => void): () => void;
}

/** Subject names, in one place so that edge, transport and admin agree. */
export const Subjects = {
  /** Edge → the device's transport node: `{deviceId, sessionId, id, method, body}` → reply body. */
  transportRequest: (nodeId: string) => `mmgw.transport.${nodeId}.req`,
  /**
   * Admin → the device's transport node (its router's pick): a device's wake-up channels, listed
   * redacted or one removed (server/transport/push/admin-view.ts: PushAdminRequest → PushAdminReply).
   */
  pushAdmin: (nodeId: string) => `mmgw.transport.${nodeId}.push`,
  /** Anyone → the edge holding this device's session: DeviceMessage → DeviceReply. */
  device: (deviceId: string) => `mmgw.device.${deviceId}`,
  /** Every node, every second or so: NodeHeartbeat. */
  heartbeat: 'mmgw.node.heartbeat',
  /** Edge → admin: `{imei, secret}` → DeviceInfo (or auth.* error). */
  registryAuth: 'mmgw.registry.auth',
  /** Transport → admin: `{imei}` → DeviceProfile (service profile, presets, policies, provisioned accounts). */
  deviceProfile: 'mmgw.registry.profile',
  /** Any role → admin: per-device log records and usage counters (fire and forget, batched). */
  records: 'mmgw.records',
  /** Admin → a node: `{reason}`; the node drains. */
  drain: (nodeId: string) => `mmgw.node.${nodeId}.drain`,
  /** Edge → every transport (fire and forget): a device session was created or resumed. DeviceSessionEvent. */
  sessionUp: 'mmgw.session.up',
  /** Edge → every transport (fire and forget): a device session ended (expired, replaced, closed). DeviceSessionEvent. */
  sessionDown: 'mmgw.session.down',
  /**
   * A transport that (re)started → every edge (fire and forget, `{nodeId}`): publish sessionUp again
   * for every session you hold, so that the accounts of connected devices come back by themselves.
   */
  edgeSessions: 'mmgw.edge.sessions',
  /** Any role → one alarm service (queue group): an event for the operators, e.g. takeover_done (server/alarms). */
  alarmEvent: 'mmgw.alarms.event',
  /**
   * A draining edge → one surviving edge (queue group): HandoverOffer (server/edge/drain-handover.ts),
   * the sessions to claim from it; answered with the ids taken.
   */
  edgeHandover: 'mmgw.edge.handover',
} as const;

/**
 * Published on Subjects.sessionUp / sessionDown. The transport node the device
 * is pinned to brings its backend sessions back (up) or lets them linger (down).
 */
export interface DeviceSessionEvent {
  deviceId: string;
  sessionId: string;
}

/** What a transport (or anyone) sends to the edge that holds a device's session. */
export type DeviceMessage =
  | { type: 'event'; name: string; body?: unknown }
  /** Another edge got a new Hello for this device: close yours with session.replaced. */
  | { type: 'takeover'; sessionId: string; byNode: string }
  /** Another edge got a Resume for this session: hand it over (replay buffer included) and close. */
  | {
      type: 'claim';
      sessionId: string;
      resumeToken: string;
      byNode: string;
      /** Wall-clock ms after which the holder keeps the session (the claimer stopped waiting). */
      expiresAt?: number;
      /** Wall-clock ms when the claim was made: a holder resumed since then keeps the session. */
      issuedAt?: number;
    }
  /**
   * The device was disabled, removed or given a new secret (admin): end its
   * session now with this code (a fatal, non-resumable refusal on its carrier).
   */
  | { type: 'revoke'; code: 'auth.disabled' | 'auth.unknown_device' | 'auth.bad_secret'; reason: string };

/** Reply to 'event': accepted into the session's replay buffer under `seq`. */
export interface DeviceEventReply {
  seq: number;
  /**
   * True when the session had no carrier attached (the device went without a
   * Bye and may resume): the event waits in the replay buffer, and the
   * transport wakes the device through its push channels. Absent from edges
   * older than this field, whose replies say nothing either way (no wake-up).
   */
  detached?: true;
}

export interface NodeHeartbeat {
  nodeId: string;
  roles: string[];
  release: string;
  startedAt: number;
  /** The receiver drops the node when no heartbeat arrived for this long. */
  ttlMs: number;
  draining: boolean;
  /** Device sessions held (edge roles), those waiting within their resume window included. */
  sessions: number;
  /** Of those, sessions with a carrier attached: devices online now (absent from nodes of older releases). */
  connected?: number;
  rssBytes: number;
  cpuSeconds: number;
  /** Transport roles: the devices and accounts this node serves (absent from other roles and older releases). */
  served?: ServedCounts;
  /**
   * Cluster mode: this node writes its record to the members table (server/router/membership.ts), where
   * the nodes that read the table take it from; they count its heartbeats on the bus as goodbyes only.
   */
  memberTable?: boolean;
}

/** What a transport node serves: devices with an account here, and those accounts per service. */
export interface ServedCounts {
  devices: number;
  mailAccounts: number;
  imAccounts: number;
}

/** What the edge learns about an authenticated device. */
export interface DeviceInfo {
  imei: string;
  operator: string;
  profile?: string;
  status: 'enabled' | 'disabled';
  /**
   * Changes whenever the device's secret changes (a digest of its hash): the edge
   * puts it in the tokens it issues and refuses a token of an older secret.
   */
  keyEpoch?: string;
  /** The heartbeat its service profile asks for (policies.heartbeatMs); absent: the edge's. */
  heartbeatMs?: number;
}

/** Payload of Subjects.registryAuth. */
export type RegistryAuthRequest =
  | { op: 'authenticate'; imei: string; secret: string }
  | { op: 'lookup'; imei: string };

/**
 * How the edge learns who a device is, without touching the registry itself
 * (the registry lives with the admin role; the edge asks over the bus, or in
 * cluster mode reads its watched copy of the shared device_auth table).
 */
export interface DeviceDirectory {
  /** Throws GatewayError auth.unknown_device | auth.bad_secret | auth.disabled. */
  authenticate(imei: string, secret: string): Promise<DeviceInfo>;
  /** For token-based Hello and resume: is the device still there and enabled? Throws like authenticate. */
  lookup(imei: string): Promise<DeviceInfo>;
}

/** How a node left the membership. */
export interface LeaveFacts {
  /** Its last heartbeat said it was draining (a clean stop), not a crash. */
  draining: boolean;
}

/** Picks the transport node that holds a device's backend sessions (rendezvous hashing). */
export interface DeviceRouter {
  /** undefined when no transport node is alive. */
  pick(deviceId: string): string | undefined;
  /**
   * Tells of each node that left the membership (not one that only drains:
   * it still answers what it was asked), and whether it was draining when it
   * left: a clean stop, which answers what it was asked before it goes, unlike
   * a crash seen by its TTL. Returns the unsubscribe.
   */
  onLeave?(listener: (nodeId: string, left: LeaveFacts) => void): () => void;
}
