/**
 * What an instance does with each envelope that passed the inbox's checks:
 * {@linkcode receiveEnvelope} checks the fields of its kind and hands it to
 * the part of the cluster it is for (presence, rooms, requests, the local
 * node).
 *
 * Internal: the `Cluster` hands every checked envelope here.
 *
 * @module
 */

import { isPresenceMeta } from "../wire/presence_frames.ts";
import type { ClusterStats } from "./cluster_options.ts";
import type { Envelope } from "./envelope.ts";
import type { LocalNode, Push } from "./local_node.ts";
import type { Presence } from "./presence.ts";
import type { RemoteRequests } from "./remote_requests.ts";
import type { ClusterRooms } from "./rooms.ts";
import { readPush } from "./routed_push.ts";

/** The parts of a cluster that received envelopes act on. */
export interface ReceiveContext {
  /** Who is online where. */
  presence: Presence;
  /** Who is in which room. */
  rooms: ClusterRooms;
  /** Requests across instances. */
  requests: RemoteRequests;
  /** The cluster's counters. */
  stats: ClusterStats;
  /** The local server. */
  node: () => LocalNode | undefined;
  /** Delivers a push to local connections. */
  deliver: (push: Push) => void;
  /** Forgets an instance that said goodbye. */
  goodbye: (node: string) => void;
  /** Sends this instance's heartbeat now. */
  sendHeartbeat: () => void;
}

/**
 * Acts on one envelope from another instance.
 *
 * @param context The cluster's parts.
 * @param envelope The envelope.
 * @param node The sending instance.
 * @param direct Whether it came on this instance's own channel.
 * @returns `true`, or why it is dropped.
 */
export function receiveEnvelope(
  context: ReceiveContext,
  envelope: Envelope,
  node: string,
  direct: boolean,
): true | string {
  const { presence, rooms, requests } = context;
  const { user } = envelope;
  switch (envelope.kind) {
    case "push": {
      const received = readPush(envelope, direct);
      if (typeof received === "string") return received;
      const { push, from } = received;
      // Only the instance a user is connected to speaks for that user.
      if (from !== undefined && !presence.holds(node, from)) {
        context.stats.forged++;
        return `from ${JSON.stringify(from)}, a user ${node} did not announce`;
      }
      presence.touch(node);
      context.deliver(push);
      return true;
    }
    case "sync": {
      const seen = presence.seen(node);
      if (seen !== true) return seen;
      context.sendHeartbeat();
      return true;
    }
    case "bye":
      context.goodbye(node);
      return true;
    case "req": {
      if (!direct) return "not on a node channel";
      const local = typeof user === "string" && presence.isLocal(user)
        ? context.node()
        : undefined;
      return requests.serve(envelope, node, local) || "bad fields";
    }
    case "res":
      if (!direct) return "not on a node channel";
      return requests.settle(envelope, node) || "bad fields";
    case "cancel":
      if (!direct) return "not on a node channel";
      return requests.cancel(envelope, node) || "bad fields";
    case "join":
      if (typeof user !== "string") return "bad user";
      return presence.join(node, user);
    case "leave":
      if (typeof user !== "string") return "bad user";
      rooms.userLeft(node, user);
      presence.leave(node, user);
      return true;
    case "hb": {
      const { users, ttl } = envelope;
      if (
        !Array.isArray(users) || !users.every((u) => typeof u === "string") ||
        !(typeof ttl === "number" && ttl > 0)
      ) {
        return "bad users or ttl";
      }
      const known = presence.heartbeat(node, users, ttl);
      if (known !== true) return known;
      const table = rooms.heartbeat(node, envelope.rooms);
      const meta = presence.heartbeatMeta(node, envelope.meta);
      return table === true ? meta : table;
    }
    case "meta": {
      const { meta } = envelope;
      if (
        typeof user !== "string" ||
        (meta !== undefined && !isPresenceMeta(meta))
      ) {
        return "bad user or meta";
      }
      return presence.setMeta(node, user, meta);
    }
    case "replace": {
      const { at } = envelope;
      if (typeof user !== "string" || typeof at !== "number") {
        return "bad user or at";
      }
      if (presence.isLocal(user)) context.node()?.replace?.(user, at, node);
      return true;
    }
    case "room":
    case "roomreq":
      return rooms.handle(envelope, node, direct);
    default:
      return true; // A later kind: ignored.
  }
}
