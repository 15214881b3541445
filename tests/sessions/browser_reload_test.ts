/**
 * Sessions across a real page reload: headless Chromium (driven by
 * playwright-core) loads a page that imports the bundled client served by a
 * real `DuplexServer` (`clientPath`), and the page is really reloaded
 * (`page.reload()`) while the server pushes to the user.
 *
 * - Opted in (`session: { storage: sessionStorage }`): the new page resumes
 *   the session and receives exactly what the old page missed, once, in
 *   order; the server sees a resume (no new session, no offline / online).
 * - Opted out (the default): the new page starts a new session and gets
 *   nothing of what was pushed during the reload.
 * - The requests of the old page are gone with it: a request whose handler
 *   was running, or had just answered, runs once and its response never
 *   settles anything in the new page (whose own requests get their own
 *   responses); a request queued offline in the old page never runs.
 * - A tab opened by the page (`window.open`, which copies `sessionStorage`)
 *   does not take the session over.
 * - A page back from the back/forward cache (Playwright's flag that turns
 *   the cache off left out) connects again and resumes.
 *
 * Outside CI the test is skipped when Chromium is missing; in CI
 * (`CI=true`) that is a failure.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Page } from "npm:playwright-core@1";
import { DuplexServer } from "../../server.ts";
import { deadline, once } from "../_helpers.ts";
import { launchChromium, skipBrowser, WAIT_MS } from "../_chromium.ts";

const SKIP = skipBrowser("the browser reload test");

/**
 * The page: imports the served client, opts into `sessionStorage` sessions
 * with `?keep`, records every `tick` notification, session event and
 * request outcome in `globalThis.state` and, so that the test can read what
 * a page saw after it is gone, in `sessionStorage` (`test.pageN`).
 * With `?echo`, each page after the first calls `echo("page N")` once
 * connected.
 */
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>reload</title>
<script type="module">
import { Client, streams } from "/duplex.js";
const params = new URLSearchParams(location.search);
const page = Number(sessionStorage.getItem("test.pages") ?? "0") + 1;
sessionStorage.setItem("test.pages", String(page));
const state = globalThis.state = {
  page, ticks: [], events: [], results: {}, errors: [], connected: false,
};
const record = () =>
  sessionStorage.setItem("test.page" + page, JSON.stringify(state));
const client = globalThis.client = new Client(
  new URL("/ws?user=ada", location.href).href.replace(/^http/, "ws"),
  {
    minDelay: 1,
    maxDelay: 20,
    streams,
    session: params.has("keep") ? { storage: sessionStorage } : true,
  },
);
globalThis.track = (name, promise) => promise.then(
  (value) => { state.results[name] = { value }; record(); },
  (error) => { state.results[name] = { error: error.name + ": " + error.message }; record(); },
);
client.on("tick", (n) => { state.ticks.push(n); record(); });
for (const type of ["resumed", "not-resumed"]) {
  client.addEventListener(type, (event) => {
    state.events.push(type + " " + (event.reason ?? event.replayed));
    record();
  });
}
client.addEventListener("error", (event) => {
  state.errors.push(String(event.error?.message ?? event.message));
  record();
});
globalThis.addEventListener("pageshow", (event) => {
  // Back from the back/forward cache: the client closed on pagehide.
  if (!event.persisted) return;
  state.restoredFromCache = (state.restoredFromCache ?? 0) + 1;
  record();
  client.connect().then(() => { state.reconnected = true; record(); });
});
record();
await client.connect();
state.connected = true;
record();
if (params.has("echo") && page > 1) {
  globalThis.track("echo", client.call("echo", "page " + page));
}
</script>
`;

/** What a page records (see PAGE). */
interface PageState {
  page: number;
  ticks: number[];
  events: string[];
  results: Record<string, { value?: unknown; error?: string }>;
  errors: string[];
  connected: boolean;
  /** `pageshow` events with `persisted` (back from the cache). */
  restoredFromCache?: number;
  /** Connected again after that. */
  reconnected?: boolean;
}

/** The server, its HTTP listener, hooks on its HTTP requests and counts. */
function startServer() {
  const server = new DuplexServer({ clientPath: "/duplex.js" });
  const counts = { online: 0, offline: 0, resume: 0, connect: 0 };
  for (const type of Object.keys(counts) as (keyof typeof counts)[]) {
    server.addEventListener(type, () => counts[type]++);
  }
  /** Called once, on the next GET of a path (then forgotten). */
  const onGet = new Map<string, () => void>();
  let refusing = false;
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request, info) => {
      const { pathname } = new URL(request.url);
      const hook = onGet.get(pathname);
      onGet.delete(pathname);
      hook?.();
      if (pathname === "/favicon.ico") {
        return new Response(null, { status: 204 });
      }
      if (pathname === "/elsewhere") {
        return new Response("<!doctype html><title>elsewhere</title>", {
          headers: { "content-type": "text/html; charset=utf-8" },
        });
      }
      if (pathname === "/" && request.headers.get("upgrade") === null) {
        return new Response(PAGE, {
          headers: { "content-type": "text/html; charset=utf-8" },
        });
      }
      if (refusing && request.headers.get("upgrade") !== null) {
        return new Response("Come back later", { status: 503 });
      }
      return server.fetch(request, info);
    },
  );
  let next = 0;
  return {
    server,
    counts,
    onGet,
    origin: `http://127.0.0.1:${http.addr.port}`,
    set refusing(value: boolean) {
      refusing = value;
    },
    /** Pushes `count` ticks (numbered on from the last) to ada. */
    push(count: number): void {
      for (let i = 0; i < count; i++) {
        server.notify(next++, { to: "ada", method: "tick" });
      }
    },
    get pushed(): number {
      return next;
    },
    async [Symbol.asyncDispose]() {
      await server.shutdown();
      await http.shutdown();
    },
  };
}

/** Fails the test on any page error or console error. */
function watch(page: Page, problems: string[]): void {
  page.on("pageerror", (error) => problems.push(String(error)));
  page.on("console", (message) => {
    // A reconnection the test refuses with 503 on purpose is logged.
    if (message.type() === "error" && !/\b503\b/.test(message.text())) {
      problems.push(message.text());
    }
  });
}

/** The state of the page now loaded. */
function stateOf(page: Page): Promise<PageState> {
  return page.evaluate(() =>
    (globalThis as unknown as { state: PageState }).state
  );
}

/** What page number `n` of the tab recorded (also once it is gone). */
async function recorded(page: Page, n: number): Promise<PageState> {
  const text = await page.evaluate(
    (key) =>
      (globalThis as unknown as {
        sessionStorage: { getItem(key: string): string | null };
      }).sessionStorage.getItem(key),
    `test.page${n}`,
  );
  assert.ok(text, `page ${n} recorded nothing`);
  return JSON.parse(text);
}

/**
 * Waits until the loaded page's state passes `check` (Playwright's
 * auto-waiting, with a deadline); on timeout, says what the page shows.
 */
async function until<A>(
  page: Page,
  what: string,
  check: (state: PageState, arg: A) => boolean,
  arg: A,
): Promise<PageState> {
  const predicate = new Function(
    "arg",
    `const state = globalThis.state;
     return state !== undefined && (${check.toString()})(state, arg);`,
  ) as (arg: unknown) => boolean;
  try {
    await page.waitForFunction(predicate, arg as unknown, { timeout: WAIT_MS });
  } catch (error) {
    throw new Error(
      `Cannot see ${what}: the page shows ${
        JSON.stringify(await stateOf(page).catch(() => undefined))
      }`,
      { cause: error },
    );
  }
  return stateOf(page);
}

function connected(page: Page, n: number): Promise<PageState> {
  return until(
    page,
    `page ${n} connected`,
    (s, n) => s.page === n && s.connected,
    n,
  );
}

/** Opens the page that keeps its session (`?keep`), once connected. */
async function openKept(
  page: Page,
  t: ReturnType<typeof startServer>,
  query = "",
): Promise<PageState> {
  await page.goto(`${t.origin}/?keep${query}`);
  return await connected(page, 1);
}

/** Handles `echo` on the server; returns what it echoed, in order. */
function recordEchoes(t: ReturnType<typeof startServer>): string[] {
  const echoed: string[] = [];
  t.server.handle("echo", (text: string) => {
    echoed.push(text);
    return `echo ${text}`;
  });
  return echoed;
}

/** The server started one session and resumed it once. */
function assertOneResume(t: ReturnType<typeof startServer>): void {
  assert.equal(t.server.sessionMetrics.started, 1);
  assert.equal(t.server.sessionMetrics.resumed, 1);
}

function ticksUpTo(page: Page, last: number): Promise<PageState> {
  return until(
    page,
    `tick ${last}`,
    (s, last) => s.ticks.includes(last),
    last,
  );
}

/**
 * Marks a promise that the test awaits later as handled, so that a failure
 * before that await is reported as the failure it is, not as an uncaught
 * rejection of this one.
 */
function quiet<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

/** 0, 1, ... n - 1. */
function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, i) => from + i);
}

/** Runs `fn` with a fresh browser page, closing everything after. */
async function withPage(
  fn: (page: Page, problems: string[]) => Promise<void>,
  backForwardCache = false,
): Promise<void> {
  const browser = await launchChromium(backForwardCache);
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems: string[] = [];
    watch(page, problems);
    await fn(page, problems);
    assert.deepEqual(problems, [], "no page errors or console errors");
    await context.close();
  } finally {
    await browser.close();
  }
}

const ignore = SKIP;

Deno.test({
  name:
    "Session in Chromium: with sessionStorage, a real page reload resumes the session; the new page gets exactly what the old one missed, once, in order; no new session, no presence flap",
  ignore,
  async fn() {
    await using t = startServer();
    await withPage(async (page, problems) => {
      await openKept(page, t);
      t.push(5);
      await ticksUpTo(page, 4);

      // Pushes during the reload: when the tab asks for the new page (the
      // old one may still get some), when the old page's socket closes (its
      // `pagehide`), and when the new page asks for the client bundle.
      t.onGet.set("/", () => t.push(5));
      t.onGet.set("/duplex.js", () => t.push(5));
      const disconnected = quiet(
        once(t.server, "disconnect", WAIT_MS).then(() => t.push(5)),
      );
      const resumed = quiet(once(t.server, "resume", WAIT_MS));
      await page.reload();
      await deadline(disconnected, WAIT_MS, "the old page's disconnect");
      await deadline(resumed, WAIT_MS, "the server's resume");
      assert.equal(t.onGet.size, 0, "the reload fetched the page and client");
      const missed = t.pushed;
      await ticksUpTo(page, missed - 1);
      // And live after the resume.
      t.push(5);
      const now = await ticksUpTo(page, t.pushed - 1);

      const old = await recorded(page, 1);
      assert.equal(now.page, 2);
      assert.deepEqual(
        [...old.ticks, ...now.ticks],
        range(0, t.pushed),
        `old page ${old.ticks}, new page ${now.ticks}`,
      );
      // Everything after the old page's pagehide (at least the ticks
      // pushed when its socket closed) reached the new page.
      assert.ok(old.ticks.length <= 10, `old page saw ${old.ticks}`);
      assert.deepEqual(now.events, [
        `resumed ${missed - old.ticks.length}`,
      ]);
      assert.deepEqual(now.errors, []);
      assert.deepEqual(t.server.roomsOf("ada"), []);
      assert.deepEqual(
        {
          started: t.server.sessionMetrics.started,
          resumed: t.server.sessionMetrics.resumed,
          expired: t.server.sessionMetrics.expired,
        },
        { started: 1, resumed: 1, expired: 0 },
      );
      assert.deepEqual(t.counts, {
        online: 1,
        offline: 0,
        resume: 1,
        connect: 2,
      });
      assert.ok(t.server.isOnline("ada"));
      assert.deepEqual(problems, []);
    });
  },
});

Deno.test({
  name:
    "Session in Chromium: without sessionStorage (the default) a page reload starts a new session; what was pushed during the reload is not delivered",
  ignore,
  async fn() {
    await using t = startServer();
    await withPage(async (page) => {
      await page.goto(`${t.origin}/`);
      await connected(page, 1);
      t.push(3);
      await ticksUpTo(page, 2);
      const offline = quiet(
        once(t.server, "offline", WAIT_MS).then(() => t.push(3)),
      );
      await page.reload();
      await deadline(offline, WAIT_MS, "the old session's end");
      const fresh = await connected(page, 2);
      t.push(3);
      const now = await ticksUpTo(page, t.pushed - 1);
      assert.deepEqual((await recorded(page, 1)).ticks, [0, 1, 2]);
      assert.deepEqual(now.ticks, [6, 7, 8]);
      assert.deepEqual(fresh.events, [], "a new page: no session event");
      assert.equal(t.server.sessionMetrics.started, 2);
      assert.equal(t.server.sessionMetrics.resumed, 0);
      assert.deepEqual(
        { online: t.counts.online, offline: t.counts.offline },
        { online: 2, offline: 1 },
      );
    });
  },
});

for (const when of ["running", "answered"] as const) {
  Deno.test({
    name:
      `Session in Chromium: a request of the old page whose handler was ${when} at the reload runs once, ${
        when === "running"
          ? "is cancelled by the new page (its signal aborts, no response)"
          : "and its replayed response settles nothing in the new page"
      }; the new page's own request gets its own response`,
    ignore,
    async fn() {
      await using t = startServer();
      let slowRuns = 0;
      const started = Promise.withResolvers<void>();
      const release = Promise.withResolvers<void>();
      const aborted = Promise.withResolvers<unknown>();
      t.server.handle("slow", async (text: string, { signal }) => {
        slowRuns++;
        started.resolve();
        signal.addEventListener("abort", () => aborted.resolve(signal.reason));
        await release.promise;
        return `slow ${text}`;
      });
      const echoed = recordEchoes(t);
      await withPage(async (page) => {
        await openKept(page, t, "&echo");
        await page.evaluate(() => {
          const g = globalThis as unknown as {
            track(name: string, promise: Promise<unknown>): void;
            client: { call(method: string, params: unknown): Promise<unknown> };
          };
          g.track("slow", g.client.call("slow", "old page"));
        });
        await deadline(started.promise, WAIT_MS, "the slow handler");
        // "answered": the response is written while no page is connected
        // (the session keeps it); "running": after the new page resumed.
        const disconnected = quiet(once(t.server, "disconnect", WAIT_MS));
        if (when === "answered") {
          disconnected.then(() => release.resolve(), () => {});
        }
        const resumed = quiet(once(t.server, "resume", WAIT_MS));
        await page.reload();
        await deadline(disconnected, WAIT_MS, "the old page's disconnect");
        await deadline(resumed, WAIT_MS, "the server's resume");
        const now = await until(
          page,
          "the new page's echo answered",
          (s) => s.page === 2 && s.results.echo !== undefined,
          null,
        );
        if (when === "running") {
          // The new page cancelled it (before its own request).
          const reason = await deadline(aborted.promise, WAIT_MS, "abort");
          assert.equal((reason as { code?: string }).code, "CANCELLED");
        }
        release.resolve();
        // A round trip after the handler ended: its response came before.
        const unexpected = await page.evaluate(async () => {
          const { client } = globalThis as unknown as {
            client: {
              call(method: string, params: unknown): Promise<unknown>;
              peer: { stats: { unexpected: number } };
            };
          };
          await client.call("echo", "after");
          return client.peer.stats.unexpected;
        });
        // "answered": the response, replayed, is a stray that settles
        // nothing; "running": cancelled, it is never sent.
        assert.equal(unexpected, when === "answered" ? 1 : 0);
        const after = await stateOf(page);
        assert.deepEqual(now.results, { echo: { value: "echo page 2" } });
        assert.deepEqual(after.results, now.results);
        // The old page's request rejected as the page went (`pagehide`).
        assert.deepEqual((await recorded(page, 1)).results, {
          slow: {
            error:
              "ConnectionClosedError: Cannot complete request: connection closed (1000 Page hidden)",
          },
        });
        assert.deepEqual(echoed, ["page 2", "after"]);
        assert.equal(slowRuns, 1);
        assert.deepEqual(after.events, [
          "resumed " + (when === "answered" ? 1 : 0),
        ]);
        assert.deepEqual(after.errors, []);
        assertOneResume(t);
      });
    },
  });
}

Deno.test({
  name:
    "Session in Chromium: a tab opened by a resumed page (window.open copies sessionStorage) starts its own session instead of taking the session over",
  ignore,
  async fn() {
    await using t = startServer();
    await withPage(async (page, problems) => {
      await openKept(page, t);
      const resumed = quiet(once(t.server, "resume", WAIT_MS));
      await page.reload();
      await deadline(resumed, WAIT_MS, "the server's resume");
      await connected(page, 2);
      // The opener's sessionStorage is copied into the new tab.
      const [opened] = await Promise.all([
        page.context().waitForEvent("page", { timeout: WAIT_MS }),
        page.evaluate(() => {
          (globalThis as unknown as { open(url: string): unknown }).open(
            "/?keep",
          );
        }),
      ]);
      watch(opened, problems);
      const second = await connected(opened, 3);
      assert.deepEqual(second.events, [], "the new tab's own, new session");
      t.push(3);
      // Each tab gets the ticks of its session (both are ada's).
      await ticksUpTo(page, 2);
      await ticksUpTo(opened, 2);
      const first = await stateOf(page);
      assert.deepEqual(first.ticks, [0, 1, 2]);
      assert.deepEqual(first.events, ["resumed 0"]);
      assert.deepEqual((await stateOf(opened)).ticks, [0, 1, 2]);
      assert.equal(t.server.sessionMetrics.started, 2);
      assert.equal(t.server.sessionMetrics.resumed, 1);
      assert.equal(t.server.connectionsOf("ada").length, 2);
      await opened.close();
    });
  },
});

Deno.test({
  name:
    "Session in Chromium: a request queued offline in the old page is gone with it: it never runs, and the new page resumes",
  ignore,
  async fn() {
    await using t = startServer();
    let slowRuns = 0;
    t.server.handle("slow", () => slowRuns++);
    const echoed = recordEchoes(t);
    await withPage(async (page) => {
      await openKept(page, t, "&echo");
      // The connection drops and the server refuses the page's attempts
      // (503) until the new page asks for the client bundle: the old page
      // is gone by then.
      t.refusing = true;
      t.onGet.set("/duplex.js", () => t.refusing = false);
      const dropped = quiet(once(t.server, "disconnect", WAIT_MS));
      const [connection] = t.server.connectionsOf("ada");
      (connection as unknown as { socket: WebSocket }).socket.close();
      await deadline(dropped, WAIT_MS, "the drop");
      await page.waitForFunction(
        () =>
          (globalThis as unknown as { client: { state: string } }).client
            .state === "reconnecting",
        null,
        { timeout: WAIT_MS },
      );
      await page.evaluate(() => {
        const g = globalThis as unknown as {
          track(name: string, promise: Promise<unknown>): void;
          client: { call(method: string, params: unknown): Promise<unknown> };
        };
        g.track("queued", g.client.call("slow", "queued in the old page"));
      });
      const resumed = quiet(once(t.server, "resume", WAIT_MS));
      await page.reload();
      await deadline(resumed, WAIT_MS, "the server's resume");
      const now = await until(
        page,
        "the new page's echo answered",
        (s) => s.page === 2 && s.results.echo !== undefined,
        null,
      );
      assert.deepEqual(now.results, { echo: { value: "echo page 2" } });
      assert.deepEqual(now.events, ["resumed 0"]);
      assert.deepEqual((await recorded(page, 1)).results, {
        queued: {
          error:
            "ConnectionClosedError: Cannot complete request: connection closed (1000 Page hidden)",
        },
      });
      // The echo's response came after anything the old page had sent.
      assert.equal(slowRuns, 0);
      assert.deepEqual(echoed, ["page 2"]);
      assertOneResume(t);
    });
  },
});

Deno.test({
  name:
    "Session in Chromium: a page back from the back/forward cache connects again and resumes its session: what was pushed while it was away arrives once, in order",
  ignore,
  async fn() {
    await using t = startServer();
    await withPage(async (page) => {
      await openKept(page, t);
      t.push(2);
      await ticksUpTo(page, 1);
      const disconnected = quiet(
        once(t.server, "disconnect", WAIT_MS).then(() => t.push(3)),
      );
      await page.goto(`${t.origin}/elsewhere`);
      await deadline(disconnected, WAIT_MS, "the page's disconnect");
      const resumed = quiet(once(t.server, "resume", WAIT_MS));
      // A page restored from the cache fires no new `load`.
      await page.goBack({ waitUntil: "commit" });
      await deadline(resumed, WAIT_MS, "the server's resume");
      const back = await until(
        page,
        "the page back from the cache, connected again",
        (s) => s.restoredFromCache === 1 && s.reconnected === true,
        null,
      );
      assert.equal(back.page, 1, "the same page, from the cache");
      const now = await ticksUpTo(page, 4);
      assert.deepEqual(now.ticks, [0, 1, 2, 3, 4]);
      assert.deepEqual(now.events, ["resumed 3"]);
      assertOneResume(t);
      assert.deepEqual(
        { online: t.counts.online, offline: t.counts.offline },
        { online: 1, offline: 0 },
      );
    }, true);
  },
});

Deno.test({
  name:
    "Session in Chromium: a download the old page was reading stops on the server when the new page resumes (its producer's finally runs)",
  ignore,
  async fn() {
    await using t = startServer();
    const stopped = Promise.withResolvers<number>();
    t.server.handle("numbers", async function* () {
      let n = 0;
      try {
        for (;;) yield n++;
      } finally {
        stopped.resolve(n);
      }
    });
    await withPage(async (page) => {
      await openKept(page, t);
      // The old page reads three numbers, then stops reading (the server
      // fills the window and waits for credit).
      await page.evaluate(() => {
        const g = globalThis as unknown as {
          state: { chunks?: number[] };
          client: { stream(method: string, p: unknown): AsyncIterable<number> };
        };
        const chunks: number[] = g.state.chunks = [];
        (async () => {
          for await (const n of g.client.stream("numbers", null)) {
            chunks.push(n);
            if (n === 2) await new Promise(() => {});
          }
        })();
      });
      await page.waitForFunction(
        () =>
          (globalThis as unknown as { state: { chunks: number[] } }).state
            .chunks.length === 3,
        null,
        { timeout: WAIT_MS },
      );
      const resumed = quiet(once(t.server, "resume", WAIT_MS));
      await page.reload();
      await deadline(resumed, WAIT_MS, "the server's resume");
      const produced = await deadline(stopped.promise, WAIT_MS, "the stop");
      assert.ok(produced >= 3 && produced <= 3 + 16, `produced ${produced}`);
      const [connection] = t.server.connectionsOf("ada");
      assert.equal(connection.peer.inFlight, 0);
      const now = await connected(page, 2);
      assert.equal(now.events.length, 1);
      assert.match(now.events[0], /^resumed \d+$/);
      assert.deepEqual(now.errors, []);
      assert.equal(
        await page.evaluate(() =>
          (globalThis as unknown as {
            client: { peer: { stats: { unexpected: number } } };
          }).client.peer.stats.unexpected
        ),
        0,
      );
    });
  },
});
