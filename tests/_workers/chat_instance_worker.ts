/**
 * A chat instance (`createChatServer` with a `Cluster`) in a Worker, for the
 * scale-out tests: the instances of one process that only a broker connects.
 *
 * In: `{cmd: "start", broker: "redis" | "broadcast-channel", url?, prefix,
 * id, heartbeatInterval, presenceTtl}`, `{cmd: "request", ref, to, method?,
 * message, timeout?}`, `{cmd: "close"}`.
 * Out: `{ev: "started", port}`, `{ev: "response", ref, value}` or
 * `{ev: "response", ref, error: {name, code}}`, `{ev: "closed"}`.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import {
  BroadcastChannelPubSub,
  DuplexError,
  type PubSub,
} from "../../server.ts";
import { RedisPubSub } from "../../redis.ts";
import { type ChatInstance, startChatInstance } from "./chat_instance.ts";

let instance: ChatInstance | undefined;

function post(message: unknown): void {
  self.postMessage(message);
}

self.onmessage = async (event: MessageEvent) => {
  const command = event.data as Record<string, unknown>;
  switch (command.cmd) {
    case "start": {
      let pubsub: PubSub;
      if (command.broker === "redis") {
        const redis = new RedisPubSub({
          url: command.url as string,
          reconnectDelay: 10,
          maxReconnectDelay: 100,
        });
        await redis.ready();
        pubsub = redis;
      } else {
        pubsub = new BroadcastChannelPubSub({
          prefix: command.prefix as string,
        });
      }
      instance = await startChatInstance(pubsub, {
        id: command.id as string,
        heartbeatInterval: command.heartbeatInterval as number,
        presenceTtl: command.presenceTtl as number,
      });
      post({ ev: "started", port: instance.http.addr.port });
      break;
    }
    case "request":
      try {
        const value = await instance!.server.request(command.message, {
          to: command.to as string,
          method: command.method as string | undefined,
          timeout: command.timeout as number | undefined,
        });
        post({ ev: "response", ref: command.ref, value });
      } catch (error) {
        post({
          ev: "response",
          ref: command.ref,
          error: {
            name: error instanceof Error ? error.name : "unknown",
            code: error instanceof DuplexError ? error.code : undefined,
          },
        });
      }
      break;
    case "close":
      await instance?.close();
      post({ ev: "closed" });
      break;
  }
};
