/**
 * The cross-instance sessions chaos run: three server processes
 * (`tests/_workers/session_instance.ts`) share one real redis-server (the
 * session store and the cluster's broker) behind a round-robin TCP
 * balancer (`FaultProxy` with three ports), so each reconnect may land on
 * any instance. Clients send requests and notifications and receive a
 * notification per request while the run kills an instance with SIGKILL,
 * restarts another with SIGTERM (hand-over), restarts Redis (its data
 * lost), freezes Redis with SIGSTOP, and cuts connections at the balancer.
 * Seeded: the fault order, the cuts and the traffic (not the network's
 * timing). Instances i0 and i2 hold sent frames until stored
 * (`writeAhead`), i1 does not: sessions move between both kinds.
 *
 * Checks, per client: every request answered ran exactly once; every
 * request rejected with `OutcomeUnknownError` ran at most once; no other
 * error; every notification to the client arrived at most once, in order,
 * and before the response of the request that sent it; every notification
 * from the client ran exactly once, or at most once and the client was told
 * it is in doubt (`notificationsInDoubt` of a `resumed`), never lost
 * without a word; a client that resumed every time kept
 * its room and caused no presence leave; the others got `not-resumed`.
 *
 * @module
 */

import {
  Client,
  OutcomeUnknownError,
  type SessionEvent,
} from "../../client.ts";
import { FaultProxy, FAULTS } from "../_fault_proxy.ts";
import { RedisServer } from "../_redis.ts";
import { random } from "../_random.ts";

/** Options of {@linkcode clusterChaos}. */
export interface ClusterChaosOptions {
  seed: number;
  clients: number;
  /** Requests plus notifications to send, in all. */
  messages: number;
  /** Requests in flight per client. */
  window: number;
  /** How long the faults are spread over, in ms. */
  durationMs: number;
  /** How long Redis stays frozen, in ms. */
  freezeMs: number;
  /**
   * Whether Redis is restarted (losing its data) mid-run (default: yes). A
   * client that resumes elsewhere before its owner wrote the session again
   * is told to try again until it did.
   */
  redisRestart?: boolean;
  verbose?: boolean;
}

/** Figures and failures of a run. */
export interface ClusterChaosResult {
  failures: string[];
  figures: Record<string, number>;
  /** Each `not-resumed`: who, when (ms into the run) and why. */
  notResumed: string[];
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One instance process. */
class Instance {
  port = 0;
  #child: Deno.ChildProcess | undefined = undefined;
  #output: Promise<void> | undefined = undefined;
  constructor(
    readonly name: string,
    readonly redis: string,
    readonly log: string,
  ) {}

  async start(): Promise<void> {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../_workers/session_instance.ts", import.meta.url).pathname,
      ],
      env: {
        REDIS_URL: this.redis,
        DUPLEX_LOG: this.log,
        DUPLEX_NAME: this.name,
        DUPLEX_WRITE_AHEAD: this.name === "i1" ? "0" : "1",
      },
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#child = child;
    const ready = Promise.withResolvers<number>();
    this.#output = (async () => {
      let text = "";
      for await (
        const chunk of child.stdout.pipeThrough(new TextDecoderStream())
      ) {
        text += chunk;
        const match = /listening (\d+)/.exec(text);
        if (match) ready.resolve(Number(match[1]));
      }
      ready.reject(new Error(`Cannot start instance ${this.name}`));
    })();
    const timer = setTimeout(
      () => ready.reject(new Error(`instance ${this.name} did not start`)),
      60_000,
    );
    try {
      this.port = await ready.promise;
    } finally {
      clearTimeout(timer);
    }
  }

  async stop(signal: Deno.Signal): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    try {
      child.kill(signal);
    } catch {
      // Gone already.
    }
    await child.status;
    await this.#output;
  }
}

/** Runs the scenario. */
export async function clusterChaos(
  options: ClusterChaosOptions,
): Promise<ClusterChaosResult> {
  const rand = random(options.seed);
  const failures: string[] = [];
  const fail = (message: string) => {
    if (failures.length < 30) failures.push(message);
  };
  const say = (line: string) => options.verbose && console.log(line);
  const dir = await Deno.makeTempDir({ prefix: "duplex_chaos_" });
  await using redis = await RedisServer.start();
  const instances = ["i0", "i1", "i2"].map((name) =>
    new Instance(name, redis.url, `${dir}/${name}.log`)
  );
  await Promise.all(instances.map((instance) => instance.start()));
  const proxy = new FaultProxy(instances.map((i) => i.port));
  const figures: Record<string, number> = {
    requests: 0,
    answered: 0,
    outcomeUnknown: 0,
    notificationsSent: 0,
    ticks: 0,
    resumed: 0,
    inDoubt: 0,
    notResumed: 0,
    cuts: 0,
    presenceLeaves: 0,
    notesInDoubt: 0,
    notesLost: 0,
  };
  const started = performance.now();
  const end = started + options.durationMs;
  let sent = 0;
  const done = () => sent >= options.messages && performance.now() >= end;

  interface State {
    user: string;
    client: Client;
    results: Map<number, "ok" | "unknown">;
    ticks: number[];
    tickSet: Set<number>;
    notes: number[];
    /** Notes the client was told are in doubt. */
    doubted: Set<number>;
    lostSession: boolean;
  }
  const states: State[] = [];
  const notResumed: string[] = [];
  for (let c = 0; c < options.clients; c++) {
    const user = `u${c}`;
    const client = new Client(`ws://127.0.0.1:${proxy.port}/?user=${user}`, {
      minDelay: 20,
      maxDelay: 300,
      pingInterval: 500,
      pingTimeout: 1_000,
      timeout: 60_000,
      maxQueue: 10_000,
      maxQueueWait: 60_000,
    });
    client.addEventListener("error", () => {});
    const state: State = {
      user,
      client,
      results: new Map(),
      ticks: [],
      tickSet: new Set(),
      notes: [],
      doubted: new Set(),
      lostSession: false,
    };
    client.addEventListener("resumed", (event) => {
      const { inDoubt, notificationsInDoubt } = event as SessionEvent;
      figures.resumed++;
      figures.inDoubt += inDoubt;
      for (const frame of notificationsInDoubt) {
        const k = (frame.message as { k: number }).k;
        if (frame.method !== "note" || state.doubted.has(k)) {
          fail(`${user}: note ${k} reported in doubt twice, or not a note`);
        }
        state.doubted.add(k);
        figures.notesInDoubt++;
      }
    });
    client.addEventListener("not-resumed", (event) => {
      figures.notResumed++;
      state.lostSession = true;
      // Order holds within a session: the new one starts afresh.
      state.ticks.push(0);
      const line = `${user} at ${Math.round(performance.now() - started)} ms: ${
        (event as SessionEvent).reason
      }`;
      notResumed.push(line);
      say(`not resumed: ${line}`);
    });
    client.on("tick", (k: number) => {
      figures.ticks++;
      const last = state.ticks.at(-1) ?? 0;
      if (k <= last) {
        fail(`${user}: tick ${k} after ${last} (twice or out of order)`);
      }
      state.ticks.push(k);
      state.tickSet.add(k);
    });
    states.push(state);
  }
  await Promise.all(states.map((s) => s.client.connect()));
  for (const state of states) {
    const rooms = await state.client.call("join", "lobby");
    if (!Array.isArray(rooms)) fail(`${state.user}: join answered ${rooms}`);
  }

  async function traffic(state: State): Promise<void> {
    let k = 0;
    const lane = async () => {
      while (!done()) {
        const n = ++k;
        sent += 2;
        figures.requests++;
        try {
          const answer = await state.client.call("work", { k: n });
          if (answer !== n) fail(`${state.user}: work ${n} answered ${answer}`);
          state.results.set(n, "ok");
          figures.answered++;
          if (!state.tickSet.has(n)) {
            fail(`${state.user}: response ${n} before its tick`);
          }
        } catch (error) {
          if (error instanceof OutcomeUnknownError) {
            state.results.set(n, "unknown");
            figures.outcomeUnknown++;
          } else {
            fail(`${state.user}: work ${n} rejected: ${error}`);
          }
        }
        try {
          state.client.emit("note", { k: n });
          state.notes.push(n);
          figures.notificationsSent++;
        } catch (error) {
          fail(`${state.user}: note ${n}: ${error}`);
        }
      }
    };
    await Promise.all(Array.from({ length: options.window }, lane));
  }

  async function faults(): Promise<void> {
    const at = (share: number) => started + options.durationMs * share;
    const until = async (time: number) => {
      while (performance.now() < time) {
        await delay(Math.min(800, 200 + rand() * 600));
        if (performance.now() >= time) break;
        figures.cuts += proxy.cutAll(FAULTS[Math.floor(rand() * 2)]);
      }
    };
    await until(at(0.15));
    say("kill -9 i0");
    await instances[0].stop("SIGKILL");
    await instances[0].start();
    proxy.targets = instances.map((i) => i.port);
    await until(at(0.35));
    say("SIGTERM i1");
    await instances[1].stop("SIGTERM");
    await instances[1].start();
    proxy.targets = instances.map((i) => i.port);
    await until(at(0.55));
    if (options.redisRestart !== false) {
      say("redis restart");
      await redis.restart();
    }
    await until(at(0.75));
    say(`redis SIGSTOP ${options.freezeMs} ms`);
    redis.pause(true);
    await delay(options.freezeMs);
    redis.pause(false);
    await until(at(1));
  }

  const progress = setInterval(
    () => say(`progress ${JSON.stringify(figures)} sent=${sent}`),
    2_000,
  );
  try {
    await Promise.all([faults(), ...states.map(traffic)]);
  } finally {
    clearInterval(progress);
  }
  say("traffic done");
  // Let the last notes and acknowledgements land, then check the rooms.
  for (const state of states) {
    const rooms = await state.client.call("rooms", null).catch(() => []);
    if (!state.lostSession && JSON.stringify(rooms) !== '["lobby"]') {
      fail(`${state.user}: rooms ${JSON.stringify(rooms)} after resuming`);
    }
  }
  const closingAt = Date.now();
  await Promise.all(states.map((s) => s.client.close()));
  proxy.closeAll();
  await Promise.all(instances.map((i) => i.stop("SIGTERM")));
  await proxy.close();

  // The logs: who ran what, where.
  const runs = new Map<string, number>();
  const notes = new Map<string, number>();
  /** Where each note ran (to tell where a lost one went). */
  const ranOn = new Map<string, string>();
  for (const instance of instances) {
    const text = await Deno.readTextFile(instance.log).catch(() => "");
    for (const line of text.split("\n")) {
      const [kind, user, k, at] = line.split(" ");
      if (kind === "W") {
        runs.set(`${user} ${k}`, (runs.get(`${user} ${k}`) ?? 0) + 1);
      }
      if (kind === "N") {
        notes.set(`${user} ${k}`, (notes.get(`${user} ${k}`) ?? 0) + 1);
        ranOn.set(`${user} ${k}`, at);
      }
      if (kind === "P" && user === "leave" && Number(at) < closingAt) {
        const who = states.find((s) => s.user === k);
        if (who !== undefined && !who.lostSession) {
          figures.presenceLeaves++;
          fail(`presence flap: ${line}`);
        }
      }
    }
  }
  await Deno.remove(dir, { recursive: true });
  for (const state of states) {
    for (const [k, result] of state.results) {
      const count = runs.get(`${state.user} ${k}`) ?? 0;
      if (result === "ok" && count !== 1) {
        fail(`${state.user}: work ${k} answered but ran ${count} times`);
      }
      if (result === "unknown" && count > 1) {
        fail(`${state.user}: work ${k} in doubt but ran ${count} times`);
      }
    }
    for (const k of state.notes) {
      const count = notes.get(`${state.user} ${k}`) ?? 0;
      if (count > 1) fail(`${state.user}: note ${k} ran ${count} times`);
      if (count === 0 && !state.doubted.has(k)) {
        figures.notesLost++;
        // The notes sent just before and after it: where they ran.
        const near = [k - 1, k + 1].map((n) => ranOn.get(`${state.user} ${n}`));
        const line =
          `${state.user}: note ${k} lost (neighbours ran on ${near})`;
        // A session not resumed was told so (not-resumed): not silent.
        if (state.lostSession) say(line);
        else fail(`${line} without a word`);
      }
    }
  }
  figures.seconds = Math.round((performance.now() - started) / 100) / 10;
  figures.messages = figures.requests + figures.notificationsSent +
    figures.ticks;
  return { failures, figures, notResumed };
}
