/**
 * What a typical browser app ships: it imports just `Client` and uses it
 * (a listener, connect, a call, close: every method of the class
 * ships anyway, tree-shaking drops only what no method reaches). `deno task size` bundles this file, tree-shaken and
 * minified, and holds the result to the 7 KB budget. Never run: it is only
 * bundled.
 *
 * @module
 */

import { Client } from "@duplex/ws/client";

const client = new Client("wss://chat.example.com/ws");
client.onNotify((text) => console.log(text));
await client.connect();
console.log(await client.call("hello", "world"));
await client.close();
