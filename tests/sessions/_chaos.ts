/**
 * The sessions chaos scenario: several clients behind a fault proxy
 * exchange requests in both directions and receive notifications and room
 * pushes while the proxy cuts their connections (FIN, RST, mid-frame,
 * black-hole) every 50–500 ms. Seeded: the faults, their timing and the
 * handlers' delays come from the seed (the network's own timing does not).
 * Checks: every handler ran exactly once, every request got its own
 * response, every notification arrived once and in order, rooms intact,
 * zero presence flaps.
 *
 * @module
 */

import { Client } from "../../client.ts";
import { DuplexServer } from "../../server.ts";
import { listen } from "../_server_helpers.ts";
import { FaultProxy, FAULTS } from "../_fault_proxy.ts";
import { random } from "../_random.ts";

/** Options of {@linkcode chaos}. */
export interface ChaosOptions {
  /** The seed of every random choice. */
  seed: number;
  /** Clients (users). */
  clients: number;
  /** Requests client → server, in all. */
  requests: number;
  /** Requests server → client, in all. */
  serverRequests: number;
  /** Notifications to users plus room pushes, in all. */
  notifications: number;
  /** Requests in flight per client and direction. */
  window?: number;
  /** How long the traffic is spread over, in ms. */
  durationMs: number;
  /** Cut interval bounds in ms. */
  cutMin?: number;
  cutMax?: number;
  verbose?: boolean;
}

/** What the run measured and what went wrong (none: passed). */
export interface ChaosResult {
  name: string;
  failures: string[];
  figures: Record<string, number | string>;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs the scenario. */
export async function chaos(options: ChaosOptions): Promise<ChaosResult> {
  const rand = random(options.seed);
  const window = options.window ?? 32;
  const failures: string[] = [];
  const fail = (message: string) => {
    if (failures.length < 20) failures.push(message);
  };
  const server = new DuplexServer({
    rateLimit: false,
    maxInFlight: 10_000,
    sessions: { grace: 60_000 },
    idleTimeout: 2, // s: Deno closes the replaced black-holed sockets
  });
  const http = listen(server);
  const proxy = new FaultProxy(http.addr.port);
  const users = Array.from({ length: options.clients }, (_, i) => `u${i}`);

  // Server side: each request runs once.
  const serverRuns = new Map<string, number>();
  server.handle(
    "work",
    async (params: { user: string; n: number }, context) => {
      const key = `${params.user}:${params.n}`;
      serverRuns.set(key, (serverRuns.get(key) ?? 0) + 1);
      if (params.user !== context.from) {
        fail(
          `work from ${context.from} says ${params.user}`,
        );
      }
      if (params.n % 3 === 0) await delay(params.n % 7);
      return { user: params.user, n: params.n };
    },
  );
  let flaps = 0;
  let online = 0;
  server.addEventListener("online", () => online++);
  server.addEventListener("offline", () => flaps++);
  let resumes = 0;
  server.addEventListener("resume", () => resumes++);
  let expired = 0;
  server.addEventListener("expire", () => expired++);

  // Clients.
  const clientRuns = new Map<string, number>();
  const received = new Map<string, { tick: number; room: number }>();
  const clients = users.map((user) => {
    const client = new Client(`ws://127.0.0.1:${proxy.port}/?user=${user}`, {
      minDelay: 1,
      maxDelay: 50,
      pingInterval: 100,
      pingTimeout: 200,
      maxQueue: 10_000,
      maxQueueWait: 30_000,
      timeout: 60_000,
      connectTimeout: 2_000,
    });
    client.addEventListener("error", () => {});
    client.addEventListener("not-resumed", (event) => {
      fail(
        `${user} not resumed: ${(event as Event & { reason: string }).reason}`,
      );
    });
    const counts = { tick: 0, room: 0 };
    received.set(user, counts);
    client.on("tick", (n: number) => {
      if (n !== counts.tick) fail(`${user} tick ${n}, expected ${counts.tick}`);
      counts.tick = n + 1;
    });
    client.on("room", (n: number) => {
      if (n !== counts.room) fail(`${user} room ${n}, expected ${counts.room}`);
      counts.room = n + 1;
    });
    client.handle("ask", async (n: number) => {
      const key = `${user}:${n}`;
      clientRuns.set(key, (clientRuns.get(key) ?? 0) + 1);
      if (n % 5 === 0) await delay(n % 3);
      return n * 2;
    });
    return client;
  });
  await Promise.all(clients.map((client) => client.connect()));
  for (const user of users) server.join("room", user);

  // The cutter.
  let cutting = true;
  let cuts = 0;
  const faults: Record<string, number> = {};
  const cutter = (async () => {
    const min = options.cutMin ?? 50;
    const max = options.cutMax ?? 500;
    while (cutting) {
      await delay(min + Math.floor(rand() * (max - min)));
      if (!cutting) break;
      const fault = FAULTS[Math.floor(rand() * FAULTS.length)];
      const n = proxy.cutAll(fault);
      if (n > 0) {
        cuts += n;
        faults[fault] = (faults[fault] ?? 0) + n;
      }
    }
  })();

  const started = performance.now();
  /** Waits until `done` of `total` is due, spreading work over the run. */
  const pace = async (done: number, total: number) => {
    const due = started + (done / total) * options.durationMs;
    const wait = due - performance.now();
    if (wait > 1) await delay(wait);
  };
  const perClient = Math.ceil(options.requests / clients.length);
  const perUser = Math.ceil(options.serverRequests / users.length);
  // Client → server.
  let answered = 0;
  const requesting = clients.map(async (client, i) => {
    const user = users[i];
    let next = 0;
    await Promise.all(
      Array.from({ length: window }, async () => {
        while (next < perClient) {
          const n = next++;
          await pace(n, perClient);
          try {
            const result = await client.call("work", { user, n }) as {
              user: string;
              n: number;
            };
            if (result.user !== user || result.n !== n) {
              fail(`${user} request ${n} got ${JSON.stringify(result)}`);
            }
            answered++;
          } catch (error) {
            fail(`${user} request ${n}: ${error}`);
          }
        }
      }),
    );
  });
  // Server → client.
  let serverAnswered = 0;
  const asking = users.map(async (user) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: window }, async () => {
        while (next < perUser) {
          const n = next++;
          await pace(n, perUser);
          try {
            const result = await server.request(n, {
              to: user,
              method: "ask",
              timeout: 60_000,
            });
            if (result !== n * 2) fail(`ask ${user} ${n} got ${result}`);
            serverAnswered++;
          } catch (error) {
            fail(`ask ${user} ${n}: ${error}`);
          }
        }
      }),
    );
  });
  // Notifications: half to each user, half to the room.
  const ticks = Math.ceil(options.notifications / 2 / users.length);
  const roomPushes = Math.ceil(options.notifications / 2);
  const pushing = (async () => {
    let tick = 0;
    let room = 0;
    while (tick < ticks || room < roomPushes) {
      for (let batch = 0; batch < 20; batch++) {
        if (tick < ticks) {
          for (const user of users) {
            server.notify(tick, { to: user, method: "tick" });
          }
          tick++;
        }
        if (room < roomPushes) {
          server.notify(room++, { room: "room", method: "room" });
        }
      }
      await delay(1);
      await pace(room, roomPushes);
    }
  })();
  await Promise.all([...requesting, ...asking, pushing]);
  cutting = false;
  await cutter;
  // A last round trip per client: every push before it has arrived.
  await Promise.all(
    clients.map((client, i) => client.call("work", { user: users[i], n: -1 })),
  );
  const seconds = (performance.now() - started) / 1000;

  // Checks.
  for (const user of users) {
    for (let n = 0; n < perClient; n++) {
      const runs = serverRuns.get(`${user}:${n}`) ?? 0;
      if (runs !== 1) fail(`server ran ${user}:${n} ${runs} times`);
    }
    for (let n = 0; n < perUser; n++) {
      const runs = clientRuns.get(`${user}:${n}`) ?? 0;
      if (runs !== 1) fail(`${user} ran ask ${n} ${runs} times`);
    }
    const counts = received.get(user)!;
    if (counts.tick !== ticks) {
      fail(`${user} got ${counts.tick} of ${ticks} ticks`);
    }
    if (counts.room !== roomPushes) {
      fail(`${user} got ${counts.room} of ${roomPushes} room pushes`);
    }
    const rooms = server.roomsOf(user);
    if (rooms.length !== 1 || rooms[0] !== "room") {
      fail(`${user} rooms ${JSON.stringify(rooms)}`);
    }
  }
  if (flaps !== 0) fail(`${flaps} presence flaps (offline events)`);
  if (online !== users.length) fail(`${online} online events`);
  if (expired !== 0) fail(`${expired} sessions expired`);
  if (cuts === 0) fail("no connection was cut");

  const metrics = server.sessionMetrics;
  const figures = {
    seed: options.seed,
    clients: users.length,
    requests: answered,
    serverRequests: serverAnswered,
    notifications: ticks * users.length + roomPushes,
    deliveries: (ticks + roomPushes) * users.length,
    cuts,
    faults: JSON.stringify(faults),
    resumes,
    replayed: metrics.replayed,
    seconds: Math.round(seconds * 10) / 10,
  };
  if (options.verbose) console.log(`  · ${JSON.stringify(figures)}`);

  const closing = clients.map((client) => client.close());
  proxy.closeAll();
  await Promise.all(closing);
  await server.shutdown();
  await proxy.close();
  await http.shutdown();
  return { name: "sessions chaos", failures, figures };
}
