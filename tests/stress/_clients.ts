/**
 * A client worker process for the connections scenario: opens `count`
 * {@linkcode Client}s with heartbeats, reports `{"type":"open"}`, then obeys
 * stdin commands: `request` (one request on each client, reports
 * `{"type":"requested"}`) and `close` (closes all, reports
 * `{"type":"closed"}` and exits).
 *
 * @module
 */

import { Client } from "../../client.ts";
import { lagProbe } from "../_lag_probe.ts";

const config = JSON.parse(Deno.args[0]) as {
  port: number;
  count: number;
  prefix: string;
  pingInterval: number;
  pingTimeout?: number;
  concurrency?: number;
};

function report(value: Record<string, unknown>): void {
  console.log(JSON.stringify(value));
}

const clients: Client[] = [];
let disconnects = 0;
/** Seconds from the start at which clients saw a disconnect (the first 20). */
const disconnectedAt: number[] = [];
// The event loop's worst lag: a process that stalls cannot answer pings.
const maxLagMs = lagProbe();
const codes: Record<string, number> = {};
let failedOpen = 0;
const started = performance.now();
let next = 0;
async function opener(): Promise<void> {
  while (next < config.count) {
    const index = next++;
    const client = new Client(
      `ws://127.0.0.1:${config.port}/?user=${config.prefix}${index}`,
      {
        pingInterval: config.pingInterval,
        // The next ping follows the previous one's timeout check, so this
        // also sets the ping period.
        pingTimeout: config.pingTimeout ?? config.pingInterval,
        connectTimeout: 60_000,
        minDelay: 100,
      },
    );
    client.addEventListener("close", (event) => {
      disconnects++;
      if (disconnectedAt.length < 20) {
        disconnectedAt.push(Math.round(performance.now() - started) / 1000);
      }
      const key = `${event.code} ${event.reason}`;
      codes[key] = (codes[key] ?? 0) + 1;
    });
    clients.push(client);
    try {
      await client.connect();
    } catch {
      failedOpen++;
    }
  }
}
await Promise.all(
  Array.from({ length: config.concurrency ?? 100 }, () => opener()),
);
report({
  type: "open",
  opened: clients.filter((c) => c.state === "open").length,
  failed: failedOpen,
  ms: Math.round(performance.now() - started),
});

const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
let rest = "";
for await (const chunk of lines) {
  rest += chunk;
  let end: number;
  while ((end = rest.indexOf("\n")) >= 0) {
    const command = rest.slice(0, end);
    rest = rest.slice(end + 1);
    if (command === "request") {
      let ok = 0;
      let failed = 0;
      const errors: string[] = [];
      const start = performance.now();
      await Promise.all(clients.map(async (client, i) => {
        try {
          const answer = await client.request(`hi ${i}`, {
            method: "echo",
            timeout: 60_000,
          });
          if (answer === `hi ${i}`) ok++;
          else failed++;
        } catch (error) {
          failed++;
          if (errors.length < 5) errors.push(String(error));
        }
      }));
      report({
        type: "requested",
        ok,
        failed,
        errors,
        disconnects,
        disconnectedAt,
        maxLagMs: maxLagMs(),
        codes,
        open: clients.filter((c) => c.state === "open").length,
        ms: Math.round(performance.now() - start),
      });
    } else if (command === "close") {
      await Promise.all(clients.map((client) => client.close()));
      report({ type: "closed" });
      Deno.exit(0);
    }
  }
}
