/**
 * The reliability scenarios, each parameterised so that `deno task
 * test:stress` runs it in full and `tests/reliability_test.ts` runs a short
 * version. The server always runs in its own process (`_server.ts`); each
 * scenario returns its figures and the failures it saw (none means passed).
 *
 * @module
 */

import { Client } from "../../client.ts";
import { DuplexError } from "../../mod.ts";
import { RawWebSocket } from "../_raw_ws.ts";
import {
  mb,
  percentile,
  ServerProcess,
  slope,
  startClients,
} from "./_harness.ts";
import type { StressStats } from "./_server.ts";

/** What a scenario measured and what went wrong. */
export interface ScenarioResult {
  name: string;
  failures: string[];
  figures: Record<string, number | string>;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function log(verbose: boolean | undefined, message: string): void {
  if (verbose) console.log(`  · ${message}`);
}

/** Options of {@linkcode connections}. */
export interface ConnectionsOptions {
  clients: number;
  processes: number;
  holdMs: number;
  sampleMs: number;
  /** Samples before this are the warm-up, excluded from the flatness check. */
  warmupMs: number;
  pingInterval: number;
  /** Client ping timeout; also the ping period (default `pingInterval`). */
  pingTimeout?: number;
  idleTimeout: number;
  verbose?: boolean;
}

/**
 * Scenario 1: many concurrent connections held with heartbeats; all stay
 * connected, a request on each is answered, server memory stays flat.
 */
export async function connections(
  options: ConnectionsOptions,
): Promise<ScenarioResult> {
  const failures: string[] = [];
  const figures: Record<string, number | string> = {};
  const server = await ServerProcess.start({
    idleTimeout: options.idleTimeout,
  });
  const perProcess = Math.ceil(options.clients / options.processes);
  const workers = Array.from(
    { length: options.processes },
    (_, i) =>
      startClients({
        port: server.port,
        count: Math.min(perProcess, options.clients - i * perProcess),
        prefix: `p${i}u`,
        pingInterval: options.pingInterval,
        pingTimeout: options.pingTimeout,
      }),
  );
  try {
    const openStart = performance.now();
    const opened = await Promise.all(
      workers.map((w) =>
        w.json<{ opened: number; failed: number }>("open", 300_000)
      ),
    );
    const total = opened.reduce((s, o) => s + o.opened, 0);
    figures.connected = total;
    figures.connectSeconds = Math.round((performance.now() - openStart) / 100) /
      10;
    if (total !== options.clients) {
      failures.push(`only ${total} of ${options.clients} connected`);
    }
    log(
      options.verbose,
      `${total} connected in ${figures.connectSeconds} s; holding ${
        options.holdMs / 1000
      } s`,
    );
    const samples: Array<[number, StressStats]> = [];
    const holdStart = performance.now();
    const first = await server.stats();
    let minConnections = first.connections;
    while (performance.now() - holdStart < options.holdMs) {
      await delay(
        Math.min(
          options.sampleMs,
          options.holdMs - (performance.now() - holdStart),
        ),
      );
      const stats = await server.stats();
      const t = (performance.now() - holdStart) / 1000;
      samples.push([t, stats]);
      minConnections = Math.min(minConnections, stats.connections);
      log(
        options.verbose,
        `t=${t.toFixed(0)}s connections=${stats.connections} rss=${
          mb(stats.rss)
        }MB heap=${mb(stats.heapUsed)}MB liveness=${stats.livenessIn}`,
      );
    }
    const last = samples.at(-1)?.[1] ?? first;
    figures.minConnectionsDuringHold = minConnections;
    if (minConnections < options.clients) {
      failures.push(`connections fell to ${minConnections} during the hold`);
    }
    // Every quiet client proves it lives: its heartbeat's ping, or its pong
    // to the server's keep-alive (which then spares it the heartbeat).
    const liveness = last.livenessIn - first.livenessIn;
    figures.livenessFramesDuringHold = liveness;
    if (liveness < options.clients) {
      failures.push(`only ${liveness} pings and pongs reached the server`);
    }
    const replies = await Promise.all(workers.map(async (w) => {
      await w.send("request");
      return await w.json<
        {
          ok: number;
          failed: number;
          disconnects: number;
          disconnectedAt: number[];
          maxLagMs: number;
          errors: string[];
          codes: Record<string, number>;
        }
      >("requested", 300_000);
    }));
    // Whether a client process stalled (it then cannot answer pings).
    figures.clientMaxLagMs = Math.max(...replies.map((r) => r.maxLagMs));
    figures.disconnectedAtSeconds = replies.flatMap((r) => r.disconnectedAt)
      .join(" ");
    const ok = replies.reduce((s, r) => s + r.ok, 0);
    const disconnects = replies.reduce((s, r) => s + r.disconnects, 0);
    figures.requestsAnswered = ok;
    figures.clientDisconnects = disconnects;
    if (ok !== options.clients) {
      failures.push(
        `${ok} of ${options.clients} requests answered: ${
          replies.flatMap((r) => r.errors).slice(0, 3)
        }`,
      );
    }
    if (disconnects) failures.push(`${disconnects} clients saw a disconnect`);
    const steady = samples.filter(([t]) => t * 1000 >= options.warmupMs);
    if (steady.length >= 2) {
      const rss = steady.map((
        [t, s],
      ): [number, number] => [t / 60, s.rss / 1e6]);
      const heap = steady.map((
        [t, s],
      ): [number, number] => [t / 60, s.heapUsed / 1e6]);
      figures.rssAfterWarmupMB = `${mb(steady[0][1].rss)} → ${
        mb(steady.at(-1)![1].rss)
      }`;
      figures.heapAfterWarmupMB = `${mb(steady[0][1].heapUsed)} → ${
        mb(steady.at(-1)![1].heapUsed)
      }`;
      figures.heapSlopeMBPerMin = Math.round(slope(heap) * 100) / 100;
      figures.rssSlopeMBPerMin = Math.round(slope(rss) * 100) / 100;
      const heapGrowth = steady.at(-1)![1].heapUsed - steady[0][1].heapUsed;
      if (heapGrowth > Math.max(8e6, steady[0][1].heapUsed * 0.1)) {
        failures.push(`heap grew ${mb(heapGrowth)} MB after the warm-up`);
      }
    }
    figures.serverCloseCodes = JSON.stringify(last.closeCodes);
    figures.clientCloseCodes = JSON.stringify(
      replies.reduce((all: Record<string, number>, r) => {
        for (const [code, n] of Object.entries(r.codes)) {
          all[code] = (all[code] ?? 0) + n;
        }
        return all;
      }, {}),
    );
    figures.serverUnhandled = last.unhandled;
    figures.serverMaxLagMs = last.maxLagMs;
    if (last.unhandled) {
      failures.push(`${last.unhandled} unhandled errors in the server`);
    }
    await Promise.all(workers.map(async (w) => {
      await w.send("close");
      await w.json("closed", 120_000);
    }));
    await server.waitFor(
      (s) => s.connections === 0,
      120_000,
      "every connection to close",
    );
  } catch (error) {
    failures.push(String(error));
  } finally {
    await Promise.all(workers.map((w) => w.stop("SIGKILL")));
    await server.stop();
  }
  return { name: "connections", failures, figures };
}

/** Options of {@linkcode slowConsumer}. */
export interface SlowConsumerOptions {
  /** Blast calls per phase. */
  blasts: number;
  /** Notifications per blast call. */
  perBlast: number;
  /** Notification payload size. */
  size: number;
  /** Latency-measuring clients. */
  others: number;
  highWaterMark: number;
  /** Allowed RSS growth while the slow client is stuck, in bytes. */
  maxGrowth: number;
  verbose?: boolean;
}

async function openClients(
  port: number,
  count: number,
  prefix: string,
  options: ConstructorParameters<typeof Client>[1] = {},
): Promise<Client[]> {
  const clients = Array.from(
    { length: count },
    (_, i) =>
      new Client(`ws://127.0.0.1:${port}/?user=${prefix}${i}`, {
        pingInterval: 60_000,
        ...options,
      }),
  );
  await Promise.all(clients.map((c) => c.connect()));
  return clients;
}

async function closeClients(clients: Client[]): Promise<void> {
  await Promise.all(clients.map((c) => c.close()));
}

async function rawJoin(
  port: number,
  user: string,
  room: string,
): Promise<RawWebSocket> {
  const raw = await RawWebSocket.connect(port, {
    path: `/?user=${user}`,
    headers: { "Sec-WebSocket-Protocol": "duplex.v1" },
  });
  await raw.sendText(
    JSON.stringify({ sequence: 1, type: 1, method: "join", message: room }),
  );
  const answer = await raw.readJson();
  if (answer?.message !== true) {
    throw new Error(`Cannot join: ${JSON.stringify(answer)}`);
  }
  return raw;
}

/** Runs blasts to room `feed` while `others` measure echo latency. */
async function blastPhase(
  blaster: Client,
  others: Client[],
  options: SlowConsumerOptions,
): Promise<number[]> {
  const latencies: number[] = [];
  let blasting = true;
  const measure = Promise.all(others.map(async (client, i) => {
    while (blasting) {
      const start = performance.now();
      await client.request(i, { method: "echo", timeout: 30_000 });
      latencies.push(performance.now() - start);
    }
  }));
  try {
    for (let i = 0; i < options.blasts; i++) {
      await blaster.request({
        room: "feed",
        count: options.perBlast,
        size: options.size,
      }, { method: "blast", timeout: 60_000 });
    }
  } finally {
    blasting = false;
    await measure;
  }
  return latencies.sort((a, b) => a - b);
}

/**
 * Scenario 2: a client that never reads while notifications are broadcast.
 * Under `drop`, the server's memory stays bounded and drops are counted;
 * under `close`, the slow client is closed with 1013. Others' echo latency
 * is compared with and without the slow client.
 */
export async function slowConsumer(
  options: SlowConsumerOptions,
): Promise<ScenarioResult> {
  const failures: string[] = [];
  const figures: Record<string, number | string> = {};
  const server = await ServerProcess.start({
    highWaterMark: options.highWaterMark,
    backpressure: "drop",
  });
  let clients: Client[] = [];
  let slow: RawWebSocket | undefined;
  try {
    clients = await openClients(server.port, options.others + 2, "c");
    const [blaster, reader, ...others] = clients;
    let received = 0;
    reader.on("blast", () => received++);
    await reader.request("feed", { method: "join" });
    const bytesPerPhase = options.blasts * options.perBlast * options.size;
    figures.bytesBroadcastPerPhaseMB = mb(bytesPerPhase);
    const base = await blastPhase(blaster, others, options);
    figures.baselineP50ms = Math.round(percentile(base, 0.5) * 10) / 10;
    figures.baselineP99ms = Math.round(percentile(base, 0.99) * 10) / 10;
    const before = await server.stats();
    slow = await rawJoin(server.port, "slow", "feed");
    const withSlow = await blastPhase(blaster, others, options);
    figures.slowP50ms = Math.round(percentile(withSlow, 0.5) * 10) / 10;
    figures.slowP99ms = Math.round(percentile(withSlow, 0.99) * 10) / 10;
    const after = await server.stats();
    figures.rssBeforeMB = mb(before.rss);
    figures.rssWithSlowMB = mb(after.rss);
    figures.dropped = after.dropped - before.dropped;
    log(options.verbose, `drop policy: ${JSON.stringify(figures)}`);
    if (after.rss - before.rss > options.maxGrowth) {
      failures.push(
        `server RSS grew ${mb(after.rss - before.rss)} MB with a slow client`,
      );
    }
    if (after.dropped - before.dropped <= 0) {
      failures.push("no notification to the slow client was dropped");
    }
    const allowed = percentile(base, 0.99) * 3 + 50;
    if (percentile(withSlow, 0.99) > allowed) {
      failures.push(
        `p99 with a slow client ${figures.slowP99ms} ms > ${
          allowed.toFixed(1)
        } ms allowed`,
      );
    }
    // Each blast fits under the high-water mark, so a member that reads
    // loses (almost) nothing; the slow one loses nearly everything.
    const sent = 2 * options.blasts * options.perBlast;
    figures.fastReaderReceivedPercent = Math.round((received / sent) * 1000) /
      10;
    if (received < sent * 0.9) {
      failures.push(`the reading member got only ${received} of ${sent}`);
    }
    slow.drop();
    slow = undefined;
    await server.waitFor(
      (s) => s.connections === clients.length,
      30_000,
      "the slow client to go",
    );
  } catch (error) {
    failures.push(String(error));
  } finally {
    slow?.drop();
    await closeClients(clients);
    await server.stop();
  }
  // The close policy: the slow client is closed with 1013.
  const closing = await ServerProcess.start({
    highWaterMark: options.highWaterMark,
    backpressure: "close",
  });
  clients = [];
  try {
    clients = await openClients(closing.port, 1, "b");
    slow = await rawJoin(closing.port, "slow", "feed");
    for (let i = 0; i < 200; i++) {
      await clients[0].request({
        room: "feed",
        count: options.perBlast,
        size: options.size,
      }, { method: "blast", timeout: 60_000 });
      if ((await closing.stats()).closeCodes["1013"]) break;
    }
    const stats = await closing.waitFor(
      (s) => (s.closeCodes["1013"] ?? 0) === 1,
      30_000,
      "a 1013 close",
    );
    figures.closePolicyCodes = JSON.stringify(stats.closeCodes);
    log(options.verbose, `close policy: codes ${figures.closePolicyCodes}`);
    await clients[0].request("still here", { method: "echo", timeout: 10_000 });
  } catch (error) {
    failures.push(`close policy: ${error}`);
  } finally {
    slow?.drop();
    await closeClients(clients);
    await closing.stop();
  }
  return { name: "slow consumer", failures, figures };
}

/** Options of {@linkcode abruptDisconnects}. */
export interface AbruptOptions {
  clients: number;
  rounds: number;
  others: number;
  verbose?: boolean;
}

/**
 * Scenario 3: raw clients with requests in flight both ways (a slow handler
 * running, a server→client request unanswered) vanish with a TCP reset;
 * everyone else keeps being served and all their state is released.
 */
export async function abruptDisconnects(
  options: AbruptOptions,
): Promise<ScenarioResult> {
  const failures: string[] = [];
  const figures: Record<string, number | string> = {};
  const server = await ServerProcess.start();
  let others: Client[] = [];
  let raws: RawWebSocket[] = [];
  let serving = true;
  let served = 0;
  let refused = 0;
  let loops: Promise<unknown> | undefined;
  try {
    others = await openClients(server.port, options.others, "o");
    await Promise.all(
      others.map((c) => c.request("lobby", { method: "join" })),
    );
    loops = Promise.all(others.map(async (client, i) => {
      while (serving) {
        try {
          await client.request(i, { method: "echo", timeout: 30_000 });
          served++;
        } catch {
          refused++;
        }
      }
    }));
    for (let round = 1; round <= options.rounds; round++) {
      raws = [];
      const batch = 100;
      for (let start = 0; start < options.clients; start += batch) {
        raws.push(
          ...await Promise.all(
            Array.from(
              { length: Math.min(batch, options.clients - start) },
              async (_, j) => {
                const index = start + j;
                const raw = await rawJoin(
                  server.port,
                  `r${round}u${index}`,
                  `room${index % 10}`,
                );
                await raw.sendText(
                  JSON.stringify({ sequence: 2, type: 1, method: "ask" }),
                );
                await raw.sendText(
                  JSON.stringify({
                    sequence: 3,
                    type: 1,
                    method: "slow",
                    message: 600_000,
                  }),
                );
                return raw;
              },
            ),
          ),
        );
      }
      const loaded = await server.waitFor(
        (s) =>
          s.pendingAsks === options.clients &&
          s.slowRunning === options.clients,
        60_000,
        "every raw client's requests to be in flight",
      );
      for (const raw of raws) raw.drop();
      raws = [];
      const released = await server.waitFor(
        (s) =>
          s.connections === options.others && s.pendingAsks === 0 &&
          s.slowRunning === 0 && s.requestsInFlight <= options.others &&
          s.roomMembers === options.others,
        60_000,
        "the dropped clients' state to be released",
      );
      log(
        options.verbose,
        `round ${round}: ${loaded.connections} → ${released.connections} connections, rooms members ${released.roomMembers}, pending asks ${released.pendingAsks}, slow ${released.slowRunning}`,
      );
      figures[`round${round}`] =
        `${loaded.connections}→${released.connections} conns, asks ${loaded.pendingAsks}→${released.pendingAsks}, rooms ${loaded.roomMembers}→${released.roomMembers}`;
    }
    serving = false;
    await loops;
    const stats = await server.stats();
    figures.othersServed = served;
    figures.othersRefused = refused;
    figures.serverUsers = stats.users;
    figures.nonEmptyRooms = stats.rooms;
    if (refused) failures.push(`${refused} requests of the others failed`);
    if (stats.users !== options.others) {
      failures.push(`${stats.users} users remain`);
    }
    if (stats.rooms !== 1) {
      failures.push(`${stats.rooms} rooms not empty (only lobby should be)`);
    }
    if (stats.unhandled) {
      failures.push(`${stats.unhandled} unhandled errors in the server`);
    }
    figures.faultsSurvived = options.clients * options.rounds;
  } catch (error) {
    failures.push(String(error));
  } finally {
    serving = false;
    for (const raw of raws) raw.drop();
    await loops?.catch(() => {});
    await closeClients(others);
    await server.stop();
  }
  return { name: "abrupt disconnects", failures, figures };
}

/** Options of {@linkcode restart}. */
export interface RestartOptions {
  clients: number;
  /** How long requests run before the kill. */
  beforeMs: number;
  /** How long the server stays down. */
  downMs: number;
  /** How long requests run after the restart. */
  afterMs: number;
  verbose?: boolean;
}

/**
 * Scenario 4: clients send requests continuously while the server process
 * is SIGKILLed and restarted on the same port. Every request settles (answer
 * or typed error), every client reconnects, and no request id is executed
 * twice across both server lives.
 */
export async function restart(
  options: RestartOptions,
): Promise<ScenarioResult> {
  const failures: string[] = [];
  const figures: Record<string, number | string> = {};
  let server = await ServerProcess.start({ logExec: true });
  const port = server.port;
  const execLines: string[] = [];
  let clients: Client[] = [];
  let sending = true;
  let answered = 0;
  let hung = 0;
  const typedErrors: Record<string, number> = {};
  const untyped: string[] = [];
  const answeredIds = new Set<string>();
  let loops: Promise<unknown> | undefined;
  try {
    clients = await openClients(port, options.clients, "k", {
      minDelay: 50,
      maxDelay: 500,
      maxQueueWait: 2_000,
      connectTimeout: 2_000,
    });
    loops = Promise.all(clients.map(async (client, i) => {
      let n = 0;
      while (sending) {
        const id = `${i}-${n++}`;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const hang = new Promise<"hung">((resolve) =>
          timer = setTimeout(() => resolve("hung"), 20_000)
        );
        const outcome = await Promise.race([
          client.request<string>({ id }, { method: "work", timeout: 5_000 })
            .then(
              (answer) => ({ answer }),
              (error: unknown) => ({ error }),
            ),
          hang,
        ]);
        clearTimeout(timer);
        if (outcome === "hung") hung++;
        else if ("answer" in outcome) {
          answered++;
          answeredIds.add(outcome.answer);
        } else if (outcome.error instanceof DuplexError) {
          const name = outcome.error.name;
          typedErrors[name] = (typedErrors[name] ?? 0) + 1;
          // Wait for the reconnect instead of spinning on errors.
          await delay(20);
        } else {
          untyped.push(String(outcome.error));
          await delay(20);
        }
      }
    }));
    await delay(options.beforeMs);
    const answeredBefore = answered;
    await server.stop("SIGKILL");
    for (const line of server.lines) execLines.push(line);
    log(options.verbose, `killed the server after ${answeredBefore} answers`);
    await delay(options.downMs);
    server = await ServerProcess.start({ port, logExec: true });
    await server.waitFor(
      (s) => s.connections === options.clients,
      60_000,
      "every client to reconnect",
    );
    figures.reconnected = options.clients;
    const answeredAtReconnect = answered;
    await delay(options.afterMs);
    sending = false;
    await loops;
    if (answered <= answeredAtReconnect) {
      failures.push("no request was answered after the restart");
    }
    const stats = await server.stats();
    if (stats.unhandled) {
      failures.push(`${stats.unhandled} unhandled errors in the server`);
    }
  } catch (error) {
    failures.push(String(error));
  } finally {
    sending = false;
    await loops?.catch(() => {});
    await closeClients(clients);
    await server.stop();
    for (const line of server.lines) execLines.push(line);
  }
  const executions = new Map<string, number>();
  for (const line of execLines) {
    if (!line.startsWith("exec ")) continue;
    const id = line.slice(5);
    executions.set(id, (executions.get(id) ?? 0) + 1);
  }
  const twice = [...executions].filter(([, n]) => n > 1);
  const unexecuted = [...answeredIds].filter((id) => !executions.has(id));
  const errors = Object.values(typedErrors).reduce((s, n) => s + n, 0);
  figures.answered = answered;
  figures.typedErrors = JSON.stringify(typedErrors);
  figures.executions = executions.size;
  figures.executedTwice = twice.length;
  figures.hung = hung;
  figures.untypedErrors = untyped.length;
  figures.requestsLost = hung + untyped.length;
  figures.requestsTotal = answered + errors + hung + untyped.length;
  if (twice.length) {
    failures.push(
      `${twice.length} requests executed twice, e.g. ${twice[0][0]}`,
    );
  }
  if (hung) failures.push(`${hung} requests hung`);
  if (untyped.length) {
    failures.push(`${untyped.length} untyped errors, e.g. ${untyped[0]}`);
  }
  if (unexecuted.length) {
    failures.push(`${unexecuted.length} answers without an execution`);
  }
  if (!errors) {
    failures.push(
      "the kill produced no typed error: did it happen under load?",
    );
  }
  return { name: "server restart", failures, figures };
}

/** Options of {@linkcode soak}. */
export interface SoakOptions {
  clients: number;
  durationMs: number;
  sampleMs: number;
  /** Samples before this are excluded from the trend. */
  warmupMs: number;
  /** Allowed heap slope in MB per minute. */
  maxSlopeMBPerMin: number;
  verbose?: boolean;
}

/**
 * Scenario 5: mixed traffic (requests, room notifications, joins, leaves,
 * reconnects) with the server heap measured (after a full GC) every sample;
 * the heap shows no growth trend and everything is released at the end.
 */
export async function soak(options: SoakOptions): Promise<ScenarioResult> {
  const failures: string[] = [];
  const figures: Record<string, number | string> = {};
  const server = await ServerProcess.start();
  let clients: Client[] = [];
  let running = true;
  const counts = {
    requests: 0,
    notifications: 0,
    received: 0,
    joins: 0,
    leaves: 0,
    reconnects: 0,
    errors: 0,
  };
  let firstError = "";
  let loops: Promise<unknown> | undefined;
  try {
    clients = await openClients(server.port, options.clients, "s", {
      minDelay: 20,
      maxDelay: 200,
    });
    for (const client of clients) client.on("say", () => counts.received++);
    let seed = 42;
    const random = () =>
      (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    loops = Promise.all(clients.map(async (client, i) => {
      while (running) {
        const roll = random();
        const room = `room${Math.floor(random() * 5)}`;
        try {
          if (roll < 0.5) {
            await client.request(`soak ${i}`, {
              method: "echo",
              timeout: 10_000,
            });
            counts.requests++;
          } else if (roll < 0.75) {
            await client.request({ room, text: `hello from ${i}` }, {
              method: "say",
              timeout: 10_000,
            });
            counts.notifications++;
          } else if (roll < 0.87) {
            await client.request(room, { method: "join", timeout: 10_000 });
            counts.joins++;
          } else if (roll < 0.99) {
            await client.request(room, { method: "leave", timeout: 10_000 });
            counts.leaves++;
          } else {
            await client.close();
            await client.connect();
            counts.reconnects++;
          }
        } catch (error) {
          counts.errors++;
          firstError ||= String(error);
        }
        await delay(5);
      }
    }));
    const samples: Array<[number, number]> = [];
    const start = performance.now();
    while (performance.now() - start < options.durationMs) {
      await delay(
        Math.min(
          options.sampleMs,
          options.durationMs - (performance.now() - start),
        ),
      );
      const stats = await server.stats();
      const t = (performance.now() - start) / 60_000;
      samples.push([t, stats.heapUsed / 1e6]);
      log(
        options.verbose,
        `t=${(t * 60).toFixed(0)}s heap=${mb(stats.heapUsed)}MB rss=${
          mb(stats.rss)
        }MB connections=${stats.connections} ${JSON.stringify(counts)}`,
      );
    }
    running = false;
    await loops;
    const steady = samples.filter(([t]) => t * 60_000 >= options.warmupMs);
    const trend = slope(steady);
    figures.heapSamplesMB = steady.map(([, h]) => h.toFixed(1)).join(" ");
    figures.heapSlopeMBPerMin = Math.round(trend * 1000) / 1000;
    Object.assign(figures, counts);
    if (counts.errors) {
      failures.push(`${counts.errors} operations failed, first: ${firstError}`);
    }
    // A trend is a slope above the bound that also adds up to something:
    // in a run of seconds, 0.1 MB of noise is a steep slope.
    const growth = steady.length ? steady.at(-1)![1] - steady[0][1] : 0;
    figures.heapGrowthMB = Math.round(growth * 100) / 100;
    if (steady.length >= 3 && trend > options.maxSlopeMBPerMin && growth > 2) {
      failures.push(
        `heap grows ${trend.toFixed(3)} MB/min (${growth.toFixed(1)} MB)`,
      );
    }
    await closeClients(clients);
    clients = [];
    const end = await server.waitFor(
      (s) => s.connections === 0 && s.roomMembers === 0,
      30_000,
      "everything released",
    );
    if (end.unhandled) {
      failures.push(`${end.unhandled} unhandled errors in the server`);
    }
  } catch (error) {
    failures.push(String(error));
  } finally {
    running = false;
    await loops?.catch(() => {});
    await closeClients(clients);
    await server.stop();
  }
  return { name: "soak", failures, figures };
}
