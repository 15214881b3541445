/**
 * Run as a separate process by tests/broadcast_channel_pubsub_test.ts:
 * listens on the BroadcastChannel named by the first argument, prints
 * "listening", then prints "received" on the first message, or "nothing"
 * once the bound given as the second argument (ms) has passed, and exits.
 *
 * @module
 */

const channel = new BroadcastChannel(Deno.args[0]);
const bound = Number(Deno.args[1]);
const result = await new Promise<string>((resolve) => {
  // The bound is the only way to observe that no message arrives.
  const timer = setTimeout(() => resolve("nothing"), bound);
  channel.onmessage = () => {
    clearTimeout(timer);
    resolve("received");
  };
  console.log("listening");
});
channel.close();
console.log(result);
