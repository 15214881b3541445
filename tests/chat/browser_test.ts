/**
 * The demo page in a real browser: headless Chromium from Debian, driven by
 * playwright-core, against the chat server on 127.0.0.1. Two pages chat,
 * see each other join and leave, survive a server restart on the same
 * port, and render hostile names and messages as text.
 *
 * Outside CI the test is skipped when Chromium is missing; in CI
 * (`CI=true`) that is a failure.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Browser, BrowserContext, Page } from "npm:playwright-core@1";
import { Buffer } from "node:buffer";
import { createChatServer } from "../../src/chat/chat.ts";
import { launchChromium, skipBrowser, WAIT_MS } from "../_chromium.ts";

const OUT = new URL("../../out/", import.meta.url);
const EVIL_NAME = "<img src=x onerror=window.__pwned=1>";
/** A 1×1 PNG. */
const PNG = Uint8Array.from(
  atob(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
  ),
  (c) => c.charCodeAt(0),
);
const EVIL_TEXT = "<b>bold?</b><img src=y onerror=window.__pwned=2>";

const SKIP = skipBrowser("the browser test");

interface ChatHttp {
  port: number;
  chat: ReturnType<typeof createChatServer>;
  /** Users whose upgrades get 503 (they keep reconnecting meanwhile). */
  refused: Set<string>;
  stop(): Promise<void>;
}

function startServer(port: number): ChatHttp {
  const chat = createChatServer();
  const refused = new Set<string>();
  const http = Deno.serve(
    { hostname: "127.0.0.1", port, onListen() {} },
    (request, info) => {
      const user = new URL(request.url).searchParams.get("user");
      if (user !== null && refused.has(user)) {
        return new Response("Come back later", { status: 503 });
      }
      return chat.fetch(request, info);
    },
  );
  let stopped: Promise<void> | undefined;
  return {
    port: http.addr.port,
    chat,
    refused,
    stop() {
      return stopped ??= chat.shutdown().then(() => http.shutdown());
    },
  };
}

/** What the page shows, read from the DOM (for assertions and errors). */
interface PageView {
  state: string;
  stateText: string;
  users: string[];
  messages: {
    who: string;
    text: string;
    mine: boolean;
    pending: boolean;
    rtt?: string;
    rttText: string;
  }[];
  nameProblem: string;
  sendDisabled: boolean;
  system: string[];
  pwned: unknown;
  images: number;
}

interface DomNode {
  textContent: string | null;
  className: string;
  disabled?: boolean;
  dataset: Record<string, string | undefined>;
  querySelector(selector: string): DomNode | null;
  querySelectorAll(selector: string): ArrayLike<DomNode>;
}

/** Runs in the page: no closure over test-module variables. */
function readView(): PageView {
  const root = globalThis as unknown as {
    document: DomNode;
    __pwned?: unknown;
  };
  const all = (selector: string): DomNode[] =>
    Array.from(root.document.querySelectorAll(selector));
  const state = root.document.querySelector("#state")!;
  return {
    state: state.dataset.state ?? "",
    stateText: state.textContent ?? "",
    users: all("#users .name").map((node) => node.textContent ?? ""),
    messages: all("#log .msg").map((node) => ({
      who: node.querySelector(".who")?.textContent ?? "",
      text: node.querySelector(".text")?.textContent ?? "",
      mine: node.className.includes("mine"),
      pending: node.className.includes("pending"),
      rtt: node.querySelector(".rtt")?.dataset.rtt,
      rttText: node.querySelector(".rtt")?.textContent ?? "",
    })),
    nameProblem: root.document.querySelector("#name-problem")?.textContent ??
      "",
    sendDisabled: root.document.querySelector("#send")?.disabled ?? true,
    system: all("#log .system").map((node) => node.textContent ?? ""),
    pwned: root.__pwned,
    images: all("img").length,
  };
}

function view(page: Page): Promise<PageView> {
  return page.evaluate(readView);
}

/**
 * Waits (with Playwright's auto-waiting, no polling of ours) until the page
 * shows what `check` accepts; on timeout the error includes what it shows.
 */
async function waitForView<A>(
  page: Page,
  what: string,
  check: (view: PageView, arg: A) => boolean,
  arg: A,
): Promise<PageView> {
  // A real function (Playwright sends its source to the page), composed of
  // the predicate and readView, both self-contained.
  const predicate = new Function(
    "arg",
    `return (${check.toString()})((${readView.toString()})(), arg);`,
  ) as (arg: unknown) => boolean;
  try {
    await page.waitForFunction(predicate, arg as unknown, {
      timeout: WAIT_MS,
    });
  } catch (error) {
    throw new Error(
      `Cannot see ${what} on ${page.url()}: the page shows ${
        JSON.stringify(await view(page), null, 1)
      }`,
      { cause: error },
    );
  }
  return view(page);
}

async function login(page: Page, name: string): Promise<void> {
  await page.locator("#name").fill(name);
  await page.locator("#name").press("Enter");
  await waitForView(page, `${name} online`, (v) => v.state === "open", null);
}

async function send(page: Page, text: string): Promise<number> {
  await page.locator("#message").fill(text);
  await page.locator("#message").press("Enter");
  const shown = await waitForView(
    page,
    `the round-trip time of ${JSON.stringify(text)}`,
    (v, t) => v.messages.some((m) => m.mine && m.text === t && m.rtt),
    text,
  );
  const mine = shown.messages.findLast((m) => m.mine && m.text === text)!;
  return Number(mine.rtt);
}

function received(page: Page, from: string, text: string): Promise<PageView> {
  return waitForView(
    page,
    `${JSON.stringify(text)} from ${JSON.stringify(from)}`,
    (v, [f, t]) =>
      v.messages.some((m) => !m.mine && m.who === f && m.text === t),
    [from, text],
  );
}

function usersAre(page: Page, users: string[]): Promise<PageView> {
  return waitForView(
    page,
    `users ${JSON.stringify(users)}`,
    (v, expected) =>
      v.state === "open" &&
      JSON.stringify(v.users) === JSON.stringify(expected),
    [...users].sort(),
  );
}

Deno.test({
  name:
    "demo page in Chromium: two users chat, RTT, escaping, presence, a blank name explained, sends queued while reconnecting, a 64-character name in the pill, reconnect after a server restart",
  ignore: SKIP,
  async fn() {
    let server = startServer(0);
    const port = server.port;
    const origin = `http://127.0.0.1:${port}`;
    let browser: Browser | undefined;
    try {
      browser = await launchChromium();
      const requests: string[] = [];
      const problems: string[] = [];
      const offers: string[] = [];
      const pages: Page[] = [];
      const contexts: BrowserContext[] = [];
      for (let i = 0; i < 2; i++) {
        const context = await browser.newContext({
          viewport: { width: 1100, height: 720 },
        });
        contexts.push(context);
        const page = await context.newPage();
        page.on("request", (request) => requests.push(request.url()));
        page.on("pageerror", (error) => problems.push(String(error)));
        page.on("console", (message) => {
          // While the server restarts, a reconnect attempt that finds the
          // port closed is logged by Chromium itself: that is expected.
          // So is a handshake the test refuses with 503 on purpose.
          if (
            message.type() === "error" &&
            !/WebSocket connection to .* failed: .*(ERR_CONNECTION_REFUSED|503)/
              .test(message.text()) &&
            !/status of 503/.test(message.text())
          ) problems.push(message.text());
        });
        if (i === 0) {
          // What the browser offers in its handshakes (the DevTools
          // protocol sees the request headers).
          const cdp = await context.newCDPSession(page);
          await cdp.send("Network.enable");
          cdp.on("Network.webSocketWillSendHandshakeRequest", (event) => {
            const headers = event.request.headers as Record<string, string>;
            offers.push(
              headers["Sec-WebSocket-Protocol"] ??
                headers["sec-websocket-protocol"] ?? "",
            );
          });
        }
        await page.goto(`${origin}/`);
        pages.push(page);
      }
      const [ada, evil] = pages;

      // A name of only spaces does nothing, and the page says why.
      await ada.locator("#name").fill("     ");
      await ada.locator("#name").press("Enter");
      const spaces = await waitForView(
        ada,
        "why a name of spaces does nothing",
        (v) => v.nameProblem.includes("only spaces"),
        null,
      );
      assert.equal(spaces.state, "closed");
      await ada.locator("#name").fill("a");
      await waitForView(
        ada,
        "the problem cleared",
        (v) => !v.nameProblem,
        null,
      );

      // Joins: each sees the other arrive.
      await login(ada, "ada");
      await usersAre(ada, ["ada"]);
      await login(evil, EVIL_NAME);
      await usersAre(ada, ["ada", EVIL_NAME]);
      await usersAre(evil, ["ada", EVIL_NAME]);

      // A browser sets TCP_NODELAY: it reads batches, but never asks for
      // Nagle answers (PROTOCOL.md "Nagle answers").
      assert.ok(offers.length > 0, "a handshake was seen");
      for (const offer of offers) {
        assert.ok(offer.includes("duplex.batch"), offer);
        assert.ok(!offer.includes("duplex.nagle"), offer);
      }

      // A message reaches the other page with its sender; the sender sees
      // the round-trip time of its request.
      const rtt = await send(ada, "Hello from Ada");
      assert.ok(rtt > 0 && rtt < WAIT_MS, `round-trip time ${rtt} ms`);
      console.log(`round-trip time of ada's first message: ${rtt} ms`);
      await received(evil, "ada", "Hello from Ada");

      // Hostile name and text are shown as text, and run nothing.
      await send(evil, EVIL_TEXT);
      const seen = await received(ada, EVIL_NAME, EVIL_TEXT);
      for (const page of pages) {
        const shown = await view(page);
        assert.equal(shown.pwned, undefined);
        assert.equal(shown.images, 0, "no <img> element was injected");
      }
      assert.ok(
        seen.system.some((line) => line.includes(`${EVIL_NAME} joined`)),
      );

      // An image picked on one page is shown on the other: bytes through
      // the real client and the binary codec (duplex.v1.bin), no base64.
      // The second, padded past 256 KiB (a PNG decoder ignores what follows
      // its end), goes as a head and a message of its own
      // (src/wire/attachments.ts) from the browser and from the server.
      const padded = new Uint8Array(PNG.byteLength + 400 * 1024);
      padded.set(PNG);
      for (
        const [index, [name, bytes]] of ([
          ["dot.png", PNG],
          ["big.png", padded],
        ] as const).entries()
      ) {
        await ada.locator("#image").setInputFiles({
          name,
          mimeType: "image/png",
          buffer: Buffer.from(bytes),
        });
        for (
          const [page, alt] of [[ada, "Image from you"], [
            evil,
            "Image from ada",
          ]] as const
        ) {
          await page.waitForFunction(
            ([alt, count]) =>
              Array.from(
                (globalThis as unknown as {
                  document: {
                    querySelectorAll(s: string): ArrayLike<{
                      alt: string;
                      complete: boolean;
                      naturalWidth: number;
                    }>;
                  };
                }).document.querySelectorAll("#log img"),
              ).filter((img) =>
                img.alt === alt && img.complete && img.naturalWidth === 1
              ).length === count,
            [alt, index + 1] as const,
            { timeout: WAIT_MS },
          );
        }
      }
      assert.equal(
        await ada.evaluate(() =>
          (globalThis as unknown as { duplex: { protocol: string } }).duplex
            .protocol
        ),
        "duplex.v1.bin",
      );
      assert.equal((await view(evil)).images, 2);

      // Send works while reconnecting: the message waits in the client's
      // queue, shown as pending, and goes out once the connection is back.
      // Ada is kicked and refused (503) meanwhile; the other page stays.
      server.refused.add("ada");
      for (const connection of server.chat.connectionsOf("ada")) {
        connection.peer.close(1012, "Service restart");
      }
      const kicked = await waitForView(
        ada,
        "the reconnecting state with Send enabled",
        (v) => v.state === "reconnecting",
        null,
      );
      assert.equal(kicked.sendDisabled, false);
      await ada.locator("#message").fill("Queued while offline");
      await ada.locator("#message").press("Enter");
      await waitForView(
        ada,
        "the queued message marked pending",
        (v) =>
          v.messages.some((m) =>
            m.mine && m.text === "Queued while offline" && m.pending &&
            m.rttText.includes("pending")
          ),
        null,
      );
      server.refused.delete("ada");
      await received(evil, "ada", "Queued while offline");
      const flushed = await waitForView(
        ada,
        "the queued message marked sent",
        (v) =>
          v.messages.some((m) =>
            m.mine && m.text === "Queued while offline" && !m.pending &&
            m.rttText === "✓ sent on reconnect"
          ),
        null,
      );
      assert.ok(
        flushed.system.some((line) =>
          line.includes("Reconnected: sending 1 queued message")
        ),
      );

      // The server restarts on the same port: both pages reconnect by
      // themselves and chat again.
      await server.stop();
      for (const page of pages) {
        await waitForView(
          page,
          "the reconnecting state",
          (v) => v.state === "reconnecting",
          null,
        );
      }
      server = startServer(port);
      await usersAre(ada, ["ada", EVIL_NAME]);
      await usersAre(evil, ["ada", EVIL_NAME]);
      await send(evil, "Back again");
      await received(ada, EVIL_NAME, "Back again");
      await send(ada, "Welcome back");
      const after = await received(evil, "ada", "Welcome back");
      assert.ok(after.system.some((line) => line.includes("Reconnected")));

      await Deno.mkdir(OUT, { recursive: true });
      const shots = [
        new URL("demo_ada.png", OUT),
        new URL("demo_evil.png", OUT),
      ];
      for (const [i, page] of pages.entries()) {
        await page.screenshot({ path: shots[i].pathname });
        console.log(`screenshot: ${shots[i].pathname}`);
      }

      // Leaves: the list follows.
      await evil.locator("#close").click();
      await waitForView(evil, "offline", (v) => v.state === "closed", null);
      await usersAre(ada, ["ada"]);
      const left = await view(ada);
      assert.ok(left.system.some((line) => line.includes(`${EVIL_NAME} left`)));

      // A name of 64 characters (the most the field takes) stays inside
      // the status pill, on a wide and on a phone screen; the full text is
      // its title.
      const longName = "W".repeat(64);
      await login(evil, longName);
      for (const width of [1100, 390]) {
        await evil.setViewportSize({ width, height: 760 });
        const pill = await evil.evaluate(() => {
          const doc = (globalThis as unknown as {
            document: {
              querySelector(s: string): {
                scrollWidth: number;
                clientWidth: number;
                title: string;
                getBoundingClientRect(): { left: number; right: number };
              };
              documentElement: { clientWidth: number };
            };
          }).document;
          const state = doc.querySelector("#state");
          const box = state.getBoundingClientRect();
          return {
            left: box.left,
            right: box.right,
            viewport: doc.documentElement.clientWidth,
            overflow: state.scrollWidth - state.clientWidth,
            title: state.title,
          };
        });
        assert.ok(
          pill.left >= 0 && pill.right <= pill.viewport && pill.overflow <= 1,
          `the pill overflows at ${width} px: ${JSON.stringify(pill)}`,
        );
        assert.equal(pill.title, `Online as ${longName}`);
      }
      const longShot = new URL("demo_long_name.png", OUT);
      await evil.screenshot({ path: longShot.pathname });
      console.log(`screenshot: ${longShot.pathname}`);

      // The narrow (phone) layout, for a look.
      await ada.setViewportSize({ width: 390, height: 760 });
      const phone = new URL("demo_phone.png", OUT);
      await ada.screenshot({ path: phone.pathname });
      console.log(`screenshot: ${phone.pathname}`);

      assert.deepEqual(problems, [], "no page errors or console errors");
      const foreign = requests.filter((url) =>
        !url.startsWith(`${origin}/`) && !url.startsWith("data:") &&
        !url.startsWith(`blob:${origin}/`)
      );
      assert.deepEqual(foreign, [], "no request leaves the server's origin");
      assert.ok(requests.includes(`${origin}/client.js`));
      for (const context of contexts) await context.close();
    } finally {
      await browser?.close();
      await server.stop();
    }
  },
});
