/**
 * The hardening scenarios of `deno task test:stress`, one per finding of
 * the attack review (issue 18): clients that never read, an upgrade storm
 * against an asynchronous `authenticate`, silent request heads until the
 * process runs out of descriptors, and `users.list` amplification. Each is
 * bounded in time and runs on loopback only; the server runs in its own
 * process.
 *
 * @module
 */

import { RawWebSocket } from "../_raw_ws.ts";
import { hog } from "../server/send_budget_test.ts";
import { mb, ServerProcess } from "./_harness.ts";
import type { ScenarioResult } from "./scenarios.ts";

function log(verbose: boolean | undefined, message: string): void {
  if (verbose) console.log(`  · ${message}`);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Options of {@linkcode neverReading}. */
export interface NeverReadingOptions {
  /** Clients that send requests for big responses and never read. */
  clients: number;
  /** Responses each one asks for. */
  requests: number;
  /** Bytes of each response. */
  size: number;
  /** The most the server's RSS may grow. */
  maxGrowth: number;
  /** Rounds of clients, one after the other (RSS after each is reported). */
  waves: number;
  verbose?: boolean;
}

/**
 * Finding 1: clients that send requests and never read. With the default
 * send budgets (16 MiB per connection, 256 MiB in all) each is closed with
 * 1013 and the server's memory stays bounded.
 */
export async function neverReading(
  options: NeverReadingOptions,
): Promise<ScenarioResult> {
  const failures: string[] = [];
  const figures: Record<string, number | string> = {};
  const server = await ServerProcess.start({ samplePeak: true });
  try {
    const before = await server.stats();
    const asked = options.clients * options.requests * options.size;
    figures.responsesAskedMB = mb(asked);
    figures.rssBeforeMB = mb(before.rss);
    // Several waves: whether the first's memory is reused or keeps growing.
    // The budgets bound what one wave adds (asserted); what stays after it
    // is reported.
    let start = before.rss;
    for (let wave = 1; wave <= options.waves; wave++) {
      log(
        options.verbose,
        `wave ${wave}: ${options.clients} clients ask ${mb(asked)} MB`,
      );
      const hogs = await Promise.all(
        Array.from({ length: options.clients }, (_, i) =>
          hog(
            server.port,
            options.requests,
            options.size,
            `hog${wave}-${i}`,
          )),
      );
      try {
        const closed = await server.waitFor(
          (stats) => (stats.closeCodes["1013"] ?? 0) === wave * options.clients,
          60_000,
          "every never-reading client to be closed with 1013",
          200,
        );
        figures[`rssPeakMB${wave}`] = mb(closed.rssPeak);
        figures.closed1013 = closed.closeCodes["1013"] ?? 0;
        if (closed.rssPeak - start > options.maxGrowth) {
          failures.push(
            `rss grew ${mb(closed.rssPeak - start)} MB in wave ${wave} (bound ${
              mb(options.maxGrowth)
            } MB)`,
          );
        }
      } catch (error) {
        failures.push(String(error));
        break;
      } finally {
        for (const socket of hogs) socket.drop();
      }
      const after = await server.waitFor(
        (stats) => stats.connections === 0,
        10_000,
        "the clients to be gone",
      );
      figures[`rssAfterMB${wave}`] = mb(after.rss);
      start = after.rss;
      figures[`heapAfterMB${wave}`] = mb(after.heapUsed);
    }
  } finally {
    await server.stop();
  }
  return { name: "never-reading clients", failures, figures };
}

/** Options of {@linkcode upgradeStorm}. */
export interface UpgradeStormOptions {
  /** Concurrent upgrades. */
  upgrades: number;
  /** The server's `maxConnections`. */
  maxConnections: number;
  /** Milliseconds the authenticate hook takes. */
  authDelay: number;
  verbose?: boolean;
}

/**
 * Finding 2: concurrent upgrades against an asynchronous `authenticate`
 * hook. Slots are taken before the hook is awaited: at most
 * `maxConnections` are accepted, the rest get 503.
 */
export async function upgradeStorm(
  options: UpgradeStormOptions,
): Promise<ScenarioResult> {
  const failures: string[] = [];
  const figures: Record<string, number | string> = {};
  const server = await ServerProcess.start({
    maxConnections: options.maxConnections,
    authDelay: options.authDelay,
  });
  const statuses: Record<string, number> = {};
  const sockets: RawWebSocket[] = [];
  try {
    const started = performance.now();
    await Promise.all(
      Array.from({ length: options.upgrades }, async (_, i) => {
        try {
          sockets.push(
            await RawWebSocket.connect(server.port, { path: `/?user=s${i}` }),
          );
          statuses["101"] = (statuses["101"] ?? 0) + 1;
        } catch (error) {
          const status = String(error).match(/ (\d{3}) /)?.[1] ?? "failed";
          statuses[status] = (statuses[status] ?? 0) + 1;
        }
      }),
    );
    figures.seconds = Math.round(performance.now() - started) / 1000;
    const stats = await server.stats();
    figures.upgrades = options.upgrades;
    figures.maxConnections = options.maxConnections;
    figures.accepted = statuses["101"] ?? 0;
    figures.refused503 = statuses["503"] ?? 0;
    figures.connectionsOnServer = stats.connections;
    log(options.verbose, `statuses ${JSON.stringify(statuses)}`);
    if ((statuses["101"] ?? 0) > options.maxConnections) {
      failures.push(
        `${
          statuses["101"]
        } accepted, over maxConnections ${options.maxConnections}`,
      );
    }
    if (stats.connections > options.maxConnections) {
      failures.push(`${stats.connections} connections on the server`);
    }
    if (
      (statuses["101"] ?? 0) + (statuses["503"] ?? 0) !== options.upgrades
    ) {
      failures.push(`unexpected answers ${JSON.stringify(statuses)}`);
    }
  } finally {
    for (const socket of sockets) socket.drop();
    await server.stop();
  }
  return { name: "upgrade storm", failures, figures };
}

/** The chat program (`server.ts`) under an open-files limit. */
async function spawnProgram(
  env: Record<string, string>,
  openFiles: number,
): Promise<{ port: number; child: Deno.ChildProcess; stop(): Promise<void> }> {
  const root = new URL("../..", import.meta.url).pathname;
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      `ulimit -n ${openFiles} && exec "$0" run -A server.ts`,
      Deno.execPath(),
    ],
    cwd: root,
    env: { PORT: "0", NO_COLOR: "1", DUPLEX_HOSTNAME: "127.0.0.1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let port = 0;
  while (!port) {
    const { value, done } = await reader.read();
    if (done) throw new Error("Cannot start server.ts: it exited");
    text += value;
    port = Number(text.match(/Listening on http:\/\/[^:]+:(\d+)\//)?.[1] ?? 0);
  }
  // Keep draining stdout so that the program never blocks on it.
  const drained = (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })();
  return {
    port,
    child,
    async stop() {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await child.status;
      await drained.catch(() => {});
    },
  };
}

/**
 * Opens silent TCP connections; returns those the kernel accepted. Stops
 * at the first that does not connect within a second (the server's accept
 * queue is full).
 */
async function silentConnections(
  port: number,
  count: number,
): Promise<Deno.TcpConn[]> {
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < count; i++) {
    try {
      conns.push(
        await Deno.connect({
          hostname: "127.0.0.1",
          port,
          signal: AbortSignal.timeout(1_000),
        }),
      );
    } catch {
      break;
    }
  }
  return conns;
}

/** Opens a WebSocket, trying again every 100 ms until `ms` have passed. */
async function openRetrying(url: string, ms: number): Promise<WebSocket> {
  const started = performance.now();
  while (true) {
    const socket = new WebSocket(url);
    const opened = await new Promise<boolean>((resolve) => {
      socket.onopen = () => resolve(true);
      socket.onclose = () => resolve(false);
    });
    if (opened) return socket;
    if (performance.now() - started > ms) {
      throw new Error(`Cannot open ${url} within ${ms} ms`);
    }
    await delay(100);
  }
}

/** Resolves when the server has closed `conn` (EOF or reset). */
async function closedByServer(conn: Deno.TcpConn): Promise<void> {
  const buffer = new Uint8Array(64);
  while ((await conn.read(buffer).catch(() => null)) !== null) {
    // Discard whatever the server says before closing.
  }
}

async function healthy(port: number, ms: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < ms) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`, {
        signal: AbortSignal.timeout(1_000),
      });
      if ((await response.text()) === "ok\n") {
        return Math.round(performance.now() - started);
      }
    } catch {
      // Not yet.
    }
    await delay(100);
  }
  throw new Error(`Cannot reach /healthz within ${ms} ms`);
}

/** Options of {@linkcode silentHeads}. */
export interface SilentHeadsOptions {
  /** Silent connections the attacker opens. */
  connections: number;
  /** The program's open-files limit. */
  openFiles: number;
  /** `DUPLEX_HEADER_TIMEOUT` in milliseconds. */
  headerTimeout: number;
  verbose?: boolean;
}

/**
 * Finding 3: silent request heads, more than the process has descriptors
 * for. Guarded (the program's default) every one is dropped and a real
 * client is served meanwhile; behind a proxy (no guard) they stay open
 * until the attacker leaves, and the program recovers afterwards.
 */
export async function silentHeads(
  options: SilentHeadsOptions,
): Promise<ScenarioResult> {
  const failures: string[] = [];
  const figures: Record<string, number | string> = {};
  const guarded = await spawnProgram(
    { DUPLEX_HEADER_TIMEOUT: String(options.headerTimeout) },
    options.openFiles,
  );
  let conns: Deno.TcpConn[] = [];
  try {
    conns = await silentConnections(guarded.port, options.connections);
    figures.silentOpened = conns.length;
    const attacked = performance.now();
    // A real client during the attack, from the attacker's address (all
    // of loopback is 127.0.0.1): the per-address cap refuses it while the
    // attacker's heads are pending, so it retries, as a browser would.
    const opening = performance.now();
    const socket = await openRetrying(
      `ws://127.0.0.1:${guarded.port}/?user=real`,
      30_000,
    ).catch((error) => {
      failures.push(String(error));
      return undefined;
    });
    figures.realClientOpenMs = Math.round(performance.now() - opening);
    const closedWithin = 10 * options.headerTimeout + 30_000;
    await Promise.race([
      Promise.all(conns.map(closedByServer)),
      delay(closedWithin).then(() => {
        throw new Error(`silent heads still open after ${closedWithin} ms`);
      }),
    ]).catch((error) => failures.push(String(error)));
    figures.allDroppedAfterMs = Math.round(performance.now() - attacked);
    log(options.verbose, `guarded: ${conns.length} silent heads dropped`);
    figures.healthAfterMs = await healthy(guarded.port, 10_000).catch(
      (error) => {
        failures.push(String(error));
        return -1;
      },
    );
    if (socket && socket.readyState !== WebSocket.OPEN) {
      failures.push("the real client was disconnected");
    }
    if (socket) {
      const closed = new Promise((resolve) => socket.onclose = resolve);
      socket.close();
      await closed;
    }
  } finally {
    for (const conn of conns) conn.close();
    conns = [];
    await guarded.stop();
  }

  const unguarded = await spawnProgram(
    { DUPLEX_BEHIND_PROXY: "1" },
    options.openFiles,
  );
  try {
    conns = await silentConnections(unguarded.port, options.connections);
    figures.unguardedOpened = conns.length;
    // Wait as long as the guard would have: they are all still open.
    await delay(2 * options.headerTimeout);
    const buffer = new Uint8Array(64);
    let open = 0;
    await Promise.all(conns.map(async (conn) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        open++;
        conn.close();
      }, 200);
      await conn.read(buffer).catch(() => null);
      clearTimeout(timer);
      if (!timedOut) conn.close();
    }));
    figures.unguardedOpenAfterTimeout = open;
    conns = [];
    const recovered = await healthy(unguarded.port, 30_000).catch((error) => {
      failures.push(`unguarded: ${error}`);
      return -1;
    });
    figures.unguardedRecoveryMs = recovered;
    log(options.verbose, `unguarded: ${open} still open, recovered`);
  } finally {
    for (const conn of conns) conn.close();
    await unguarded.stop();
  }
  return { name: "silent heads", failures, figures };
}

/** Options of {@linkcode usersListAmplification}. */
export interface AmplificationOptions {
  /** Users online. */
  users: number;
  /** Connections asking for `users.list`. */
  attackers: number;
  /** Requests each attacker sends per 100 ms. */
  batch: number;
  durationMs: number;
  verbose?: boolean;
}

/**
 * Finding 4: `users.list` as an amplifier. With many users online, a few
 * connections ask for the list as fast as they can: each answer is one
 * page (at most 1,000 users), and the default rate limit bounds how many
 * answers a connection gets. Reports bytes received over bytes sent.
 */
export async function usersListAmplification(
  options: AmplificationOptions,
): Promise<ScenarioResult> {
  const failures: string[] = [];
  const figures: Record<string, number | string> = {};
  const server = await ServerProcess.start({
    chat: true,
    defaultRateLimit: true,
  });
  const idle: WebSocket[] = [];
  const attackers: WebSocket[] = [];
  const waitOpen = (socket: WebSocket) =>
    new Promise<void>((resolve, reject) => {
      socket.onopen = () => resolve();
      socket.onerror = () => reject(new Error("Cannot open"));
    });
  try {
    for (let i = 0; i < options.users; i += 100) {
      const batch = [];
      for (let j = i; j < Math.min(i + 100, options.users); j++) {
        const socket = new WebSocket(
          `ws://127.0.0.1:${server.port}/?user=user-${
            String(j).padStart(5, "0")
          }`,
        );
        idle.push(socket);
        batch.push(waitOpen(socket));
      }
      await Promise.all(batch);
    }
    log(options.verbose, `${options.users} users online`);
    let bytesIn = 0;
    let bytesOut = 0;
    let pages = 0;
    let refused = 0;
    let largestPage = 0;
    for (let a = 0; a < options.attackers; a++) {
      const socket = new WebSocket(
        `ws://127.0.0.1:${server.port}/?user=attacker${a}`,
      );
      socket.onmessage = (event) => {
        const data = String(event.data);
        bytesIn += data.length;
        const frame = JSON.parse(data);
        if (frame.type !== 2) return;
        if (frame.error) refused++;
        else {
          pages++;
          largestPage = Math.max(largestPage, frame.message.length);
        }
      };
      attackers.push(socket);
      await waitOpen(socket);
    }
    const request = '{"sequence":1,"type":1,"method":"users.list"}';
    const started = performance.now();
    while (performance.now() - started < options.durationMs) {
      for (const socket of attackers) {
        for (let i = 0; i < options.batch; i++) socket.send(request);
        bytesOut += request.length * options.batch;
      }
      await delay(100);
    }
    // The last answers.
    await delay(500);
    const seconds = (performance.now() - started) / 1000;
    const stats = await server.stats();
    figures.usersOnline = stats.users;
    figures.requestKBps = Math.round(bytesOut / seconds / 1000);
    figures.responseMBps = Math.round(bytesIn / seconds / 1e5) / 10;
    const answered = pages + refused;
    figures.ratio = Math.round(
      bytesIn / Math.max(1, answered * request.length),
    );
    figures.pages = pages;
    figures.rateLimited = refused;
    figures.largestPage = largestPage;
    if (largestPage > 1_000) {
      failures.push(`a page held ${largestPage} users`);
    }
    // At most the burst plus the rate, per connection.
    const allowed = options.attackers * (1_000 + 500 * seconds);
    if (pages > allowed) {
      failures.push(`${pages} pages answered, over the rate limit`);
    }
  } catch (error) {
    failures.push(String(error));
  } finally {
    const all = [...idle, ...attackers];
    await Promise.all(
      all.map((socket) =>
        socket.readyState === WebSocket.CLOSED ? undefined : new Promise(
          (resolve) => {
            socket.onclose = resolve;
            socket.close();
          },
        )
      ),
    );
    await server.stop();
  }
  return { name: "users.list amplification", failures, figures };
}
