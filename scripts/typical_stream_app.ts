/**
 * The typical app of `scripts/typical_app.ts` with stream support: it
 * passes the `streams` option and reads a streamed result. `deno task size`
 * bundles it to show what opting in costs. Never run: it is only bundled.
 *
 * @module
 */

import { Client, streams } from "@duplex/ws/client";

const client = new Client("wss://chat.example.com/ws", { streams });
client.onNotify((text) => console.log(text));
await client.connect();
console.log(await client.call("hello", "world"));
for await (const line of client.stream("tail")) console.log(line);
await client.close();
