/** Public surface of routing: membership from heartbeats and rendezvous hashing over it. */
export { type Clock, Membership, type MembershipOptions, servesRole, startHeartbeat } from './membership.ts';
export {
  hash64,
  type NodeSource,
  RendezvousRouter,
  type RendezvousRouterOptions,
  rendezvousPick,
} from './rendezvous.ts';
