/**
 * A cluster instance in a Worker, over BroadcastChannelPubSub, driven by
 * messages from the test (see tests/broadcast_channel_pubsub_test.ts).
 *
 * In: `{cmd: "start", id, prefix}`, `{cmd: "addUser", user}`,
 * `{cmd: "removeUser", user}`, `{cmd: "publish", push}`,
 * `{cmd: "request", ref, user, message, timeout}`, `{cmd: "publishRaw",
 * channel, data}`, `{cmd: "subscribeRaw", channel}`, `{cmd: "close"}`.
 * Out: `{ev: "started"}`, `{ev: "delivered", push}`, `{ev: "join" | "leave",
 * detail}`, `{ev: "response", ref, value}` or `{ev: "response", ref, error:
 * {name, code}}`, `{ev: "raw", channel, data}`, `{ev: "closed"}`.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { Cluster, type Push } from "../../src/cluster/cluster.ts";
import { BroadcastChannelPubSub } from "../../src/cluster/broadcast_channel_pubsub.ts";
import { DuplexError } from "../../src/wire/errors.ts";
import { NotConnectedError } from "../../src/cluster/not_connected_error.ts";

let bus: BroadcastChannelPubSub | undefined;
let cluster: Cluster | undefined;
const users = new Set<string>();

function post(message: unknown): void {
  self.postMessage(message);
}

self.onmessage = async (event: MessageEvent) => {
  const command = event.data as Record<string, unknown>;
  switch (command.cmd) {
    case "start": {
      bus = new BroadcastChannelPubSub({ prefix: command.prefix as string });
      cluster = new Cluster(bus, {
        id: command.id as string,
        heartbeatInterval: 20,
        presenceTtl: 300, // 15 heartbeats: survivors must not expire under CI load
        node: {
          deliver: (push: Push) => post({ ev: "delivered", push }),
          request: (user, message) =>
            users.has(user)
              ? Promise.resolve({ user, echo: message, at: command.id })
              : Promise.reject(new NotConnectedError(user)),
        },
      });
      for (const type of ["join", "leave"] as const) {
        cluster.addEventListener(
          type,
          (e) => post({ ev: type, detail: e.detail }),
        );
      }
      await cluster.start();
      post({ ev: "started" });
      break;
    }
    case "addUser":
      users.add(command.user as string);
      cluster!.addLocalUser(command.user as string);
      break;
    case "removeUser":
      users.delete(command.user as string);
      cluster!.removeLocalUser(command.user as string);
      break;
    case "publish":
      cluster!.publish(command.push as Push);
      break;
    case "request":
      try {
        const value = await cluster!.request(
          command.user as string,
          command.message,
          {
            timeout: command.timeout as number,
          },
        );
        post({ ev: "response", ref: command.ref, value });
      } catch (error) {
        post({
          ev: "response",
          ref: command.ref,
          error: {
            name: (error as Error).name,
            code: error instanceof DuplexError ? error.code : undefined,
          },
        });
      }
      break;
    case "publishRaw":
      await bus!.publish(command.channel as string, command.data as string);
      break;
    case "subscribeRaw":
      await bus!.subscribe(
        command.channel as string,
        (data) => post({ ev: "raw", channel: command.channel, data }),
      );
      post({ ev: "subscribed", channel: command.channel });
      break;
    case "close":
      await cluster?.close();
      await bus?.close();
      post({ ev: "closed" });
      break;
  }
};
