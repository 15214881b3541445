/**
 * The HTML, CSS and script of the demo chat page served at `/`. The script
 * imports the real client from `/client.js` (the browser bundle of
 * `client.ts`) and makes no other request. Every string that comes from a
 * user (names and messages) is inserted with `textContent`, never as HTML.
 *
 * The script is written without template literals so that it can live in
 * this TypeScript template literal unchanged.
 *
 * @module
 */

/**
 * Renders the demo page.
 *
 * @param nonce The content security policy nonce of the page's script.
 * @returns The page's HTML.
 */
export function demoHtml(nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Duplex chat</title>
<link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E%3Crect width='32' height='32' rx='8' fill='%230b5cad'/%3E%3Cpath d='M8 12h13l-4-4M24 20H11l4 4' stroke='white' stroke-width='3' fill='none' stroke-linecap='round' stroke-linejoin='round'/%3E%3C/svg%3E">
<style>
  :root {
    --bg: #eef1f5; --panel: #ffffff; --text: #1b1f24; --muted: #59636e;
    --accent: #0b5cad; --accent-text: #ffffff; --mine: #dcebfc; --other: #f3f5f8;
    --border: #d0d7de; --ok: #1a7f37; --warn: #9a6700; --bad: #c21d2a;
    --name-l: 30%; --avatar-l: 38%;
    --radius: 12px; --shadow: 0 1px 2px rgb(0 0 0 / .06), 0 4px 16px rgb(0 0 0 / .05);
  }
  @media (prefers-color-scheme: dark) {
    :root {
      --bg: #0d1117; --panel: #161b22; --text: #e6edf3; --muted: #9da7b3;
      --accent: #4493f8; --accent-text: #0d1117; --mine: #1a3052; --other: #1f252e;
      --border: #30363d; --ok: #3fb950; --warn: #d29922; --bad: #ff7b72;
      --name-l: 74%; --avatar-l: 34%;
      --shadow: none;
    }
  }
  * { box-sizing: border-box; }
  html, body { height: 100%; }
  body {
    margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
    background: var(--bg); color: var(--text);
  }
  .app {
    height: 100%; height: 100dvh; max-width: 72rem; margin: 0 auto;
    display: grid; grid-template-rows: auto auto minmax(0, 1fr) auto;
    grid-template-columns: minmax(0, 1fr); /* long names never widen the page */
    gap: .75rem; padding: .75rem 1rem;
  }
  header { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem 1rem; }
  .brand { display: flex; align-items: center; gap: .6rem; margin-right: auto; min-width: 0; }
  .brand svg { flex: none; }
  h1 { font-size: 1.25rem; margin: 0; letter-spacing: -.01em; }
  .tagline { margin: 0; color: var(--muted); font-size: .9rem; }
  h2 {
    font-size: .78rem; text-transform: uppercase; letter-spacing: .07em;
    color: var(--muted); margin: 0 0 .6rem; display: flex; align-items: center; gap: .4rem;
  }
  .state {
    display: inline-flex; align-items: center; gap: .45rem; font-size: .9rem; font-weight: 600;
    padding: .25rem .75rem; border-radius: 999px; border: 1px solid var(--border);
    background: var(--panel); color: var(--muted); font-variant-numeric: tabular-nums;
    min-width: 0; max-width: min(100%, 24rem);
  }
  .state .dot { flex: none; width: .6rem; height: .6rem; border-radius: 50%; background: currentColor; }
  #state-text { min-width: 0; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .state[data-state=open] { color: var(--ok); border-color: var(--ok); }
  .state[data-state=connecting], .state[data-state=reconnecting] { color: var(--warn); border-color: var(--warn); }
  .state[data-state=connecting] .dot, .state[data-state=reconnecting] .dot { animation: pulse 1s ease-in-out infinite; }
  @keyframes pulse { 50% { opacity: .25; } }
  @media (prefers-reduced-motion: reduce) { .state .dot { animation: none !important; } }
  .panel {
    background: var(--panel); border: 1px solid var(--border); border-radius: var(--radius);
    box-shadow: var(--shadow);
  }
  form { margin: 0; }
  .login { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem; padding: .6rem .75rem; }
  .login label { font-weight: 600; }
  .login input { flex: 1 1 10rem; max-width: 20rem; }
  input[type=text] {
    font: inherit; color: inherit; background: var(--bg); border: 1px solid var(--border);
    border-radius: 8px; padding: .5rem .7rem; min-width: 0;
  }
  input[type=text]:disabled { color: var(--muted); }
  button {
    font: inherit; font-weight: 600; border-radius: 8px; padding: .5rem 1rem; cursor: pointer;
    border: 1px solid var(--accent); background: var(--accent); color: var(--accent-text);
  }
  button.secondary { background: transparent; color: var(--accent); }
  button:disabled { opacity: .4; cursor: not-allowed; }
  :focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
  .hint { color: var(--muted); font-size: .85rem; margin: 0; }
  .problem { flex-basis: 100%; color: var(--bad); font-size: .9rem; margin: 0; }
  .problem:empty { display: none; }
  input[aria-invalid=true] { border-color: var(--bad); }
  kbd {
    font: .8rem ui-monospace, SFMono-Regular, Menlo, monospace; padding: .05rem .35rem;
    border: 1px solid var(--border); border-bottom-width: 2px; border-radius: 4px; background: var(--bg);
  }
  code { font: .85rem ui-monospace, SFMono-Regular, Menlo, monospace; }
  main { display: grid; grid-template-columns: minmax(0, 1fr) 15rem; gap: .75rem; min-height: 0; }
  .chat { display: grid; grid-template-rows: minmax(0, 1fr) auto; min-height: 0; overflow: hidden; }
  .messages { position: relative; min-height: 0; display: grid; }
  #log {
    list-style: none; margin: 0; padding: 1rem; overflow-y: auto; min-height: 0;
    display: flex; flex-direction: column; gap: .5rem; scroll-behavior: smooth;
  }
  #log:empty { display: none; }
  .empty { align-self: center; justify-self: center; text-align: center; max-width: 26rem; padding: 2rem 1rem; color: var(--muted); }
  .empty .big { font-size: 2.2rem; line-height: 1; margin-bottom: .5rem; }
  .empty p { margin: .25rem 0; }
  #log:not(:empty) + .empty { display: none; }
  .msg { display: flex; align-items: flex-end; gap: .5rem; max-width: min(36rem, 88%); }
  .msg.mine { align-self: flex-end; flex-direction: row-reverse; }
  .avatar {
    flex: none; width: 2rem; height: 2rem; border-radius: 50%; display: grid; place-items: center;
    font-weight: 700; font-size: .9rem; color: #fff; background: hsl(var(--hue, 210) 55% var(--avatar-l));
    overflow: hidden;
  }
  .bubble { background: var(--other); border-radius: 14px 14px 14px 4px; padding: .4rem .75rem .5rem; min-width: 0; }
  .mine .bubble { background: var(--mine); border-radius: 14px 14px 4px 14px; }
  .meta { display: flex; flex-wrap: wrap; align-items: baseline; gap: 0 .5rem; font-size: .78rem; color: var(--muted); }
  .who { font-weight: 700; font-size: .85rem; color: hsl(var(--hue, 210) 60% var(--name-l)); overflow-wrap: anywhere; }
  .text { white-space: pre-wrap; overflow-wrap: anywhere; }
  .rtt { font-variant-numeric: tabular-nums; white-space: nowrap; }
  .rtt.done { color: var(--ok); }
  .msg.failed .rtt { color: var(--bad); }
  .msg.pending .bubble { opacity: .7; outline: 1px dashed var(--warn); }
  .msg.pending .rtt { color: var(--warn); }
  .msg.failed .bubble { outline: 1px dashed var(--bad); }
  .system { align-self: center; font-size: .85rem; color: var(--muted); text-align: center; overflow-wrap: anywhere; }
  .system time { margin-right: .35rem; }
  .system strong { color: var(--text); }
  .composer { display: flex; gap: .5rem; padding: .75rem; border-top: 1px solid var(--border); }
  .composer input { flex: 1 1 auto; }
  .composer input[type=file] { display: none; }
  .bubble img { display: block; max-width: min(16rem, 100%); max-height: 16rem; border-radius: 6px; margin-top: .25rem; }
  .messages.dropping { outline: 2px dashed var(--accent); outline-offset: -6px; }
  .people { padding: 1rem; min-height: 0; overflow-y: auto; }
  .count {
    color: var(--accent-text); background: var(--accent); border-radius: 999px;
    padding: 0 .45rem; font-size: .75rem; letter-spacing: 0;
  }
  #users { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: .35rem; }
  #users li { display: flex; align-items: center; gap: .5rem; min-width: 0; }
  #users .avatar { width: 1.6rem; height: 1.6rem; font-size: .75rem; }
  #users .name { overflow-wrap: anywhere; min-width: 0; }
  .you { font-size: .72rem; color: var(--muted); border: 1px solid var(--border); border-radius: 999px; padding: 0 .4rem; }
  #users:empty { display: none; }
  #users:not(:empty) + .hint { display: none; }
  .people.stale #users { opacity: .5; }
  footer { font-size: .82rem; }
  .visually-hidden {
    position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0);
    white-space: nowrap;
  }
  @media (max-width: 720px) {
    .app { padding: .5rem; gap: .5rem; }
    .tagline, footer { display: none; }
    main { grid-template-columns: 1fr; grid-template-rows: auto minmax(0, 1fr); }
    .people { order: -1; padding: .5rem .75rem; }
    .people h2 { margin-bottom: .4rem; }
    #users { flex-direction: row; flex-wrap: nowrap; overflow-x: auto; gap: .75rem; }
    #users li { flex: none; max-width: 12rem; }
    #users .name { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
    .login button { flex: 1 1 auto; }
    .login input { max-width: none; }
    .msg { max-width: 94%; }
  }
</style>
</head>
<body>
<div class="app">
  <header>
    <div class="brand">
      <svg width="32" height="32" viewBox="0 0 32 32" aria-hidden="true"><rect width="32" height="32" rx="8" fill="#0b5cad"/><path d="M8 12h13l-4-4M24 20H11l4 4" stroke="#fff" stroke-width="3" fill="none" stroke-linecap="round" stroke-linejoin="round"/></svg>
      <div>
        <h1>Duplex chat</h1>
        <p class="tagline">Request, response and notify over one WebSocket</p>
      </div>
    </div>
    <output id="state" class="state" data-state="closed" role="status"><span class="dot" aria-hidden="true"></span><span id="state-text">Offline</span></output>
  </header>

  <form id="login-form" class="login panel" autocomplete="off">
    <label for="name">Your name</label>
    <input id="name" name="name" type="text" maxlength="64" required aria-describedby="name-problem" placeholder="e.g. Ada" autofocus spellcheck="false">
    <button id="open" type="submit">Open</button>
    <button id="close" type="button" class="secondary" disabled>Close</button>
    <p id="name-problem" class="problem" role="alert"></p>
  </form>

  <main>
    <section class="chat panel" aria-labelledby="chat-title">
      <h2 id="chat-title" class="visually-hidden">Messages</h2>
      <div class="messages">
        <ol id="log" aria-live="polite" aria-relevant="additions"></ol>
        <div class="empty" id="empty">
          <div class="big" aria-hidden="true">💬</div>
          <p id="empty-text">Pick a name and press <kbd>Enter</kbd> to join.</p>
          <p class="hint">Then open this page in a second tab to chat with yourself.</p>
        </div>
      </div>
      <form id="send-form" class="composer" autocomplete="off">
        <label for="message" class="visually-hidden">Message</label>
        <input id="message" name="message" type="text" maxlength="2000" placeholder="Write a message, press Enter" disabled>
        <input id="image" type="file" accept="image/png,image/jpeg,image/gif,image/webp">
        <button id="attach" type="button" class="secondary" title="Send an image (or paste or drop one)" disabled>Image</button>
        <button id="send" type="submit" disabled>Send</button>
      </form>
    </section>
    <aside id="people" class="people panel" aria-labelledby="people-title">
      <h2 id="people-title">Online <span id="count" class="count">0</span></h2>
      <ul id="users" aria-live="polite"></ul>
      <p class="hint">Nobody yet.</p>
    </aside>
  </main>

  <footer class="hint">
    This page runs the real <code>@duplex/ws</code> client from <code>/client.js</code>.
    Try <code>await duplex.call("users.list")</code> in the console. <kbd>↑</kbd> recalls your last message.
  </footer>
</div>
<script type="module" nonce="${nonce}">
import { Client } from "/client.js";
import { binaryCodec } from "/binary.js";

const $ = (id) => document.getElementById(id);
const log = $("log");
const users = $("users");
const nameInput = $("name");
const messageInput = $("message");
const online = new Set();
let client = null;
let me = "";
let everOpen = false;
let lost = false;
let countdown = null;
let lastSent = "";

try { nameInput.value = localStorage.getItem("duplex.name") || ""; } catch { /* storage may be off */ }

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  // User text only ever goes through textContent: never HTML.
  if (text !== undefined) node.textContent = text;
  return node;
}

function hue(name) {
  let h = 7;
  for (const char of name) h = (h * 31 + char.codePointAt(0)) % 360;
  return h;
}

function avatar(name) {
  const node = el("span", "avatar", Array.from(name)[0].toUpperCase());
  node.setAttribute("aria-hidden", "true");
  node.style.setProperty("--hue", String(hue(name)));
  return node;
}

function stamp() {
  const now = new Date();
  const node = el("time", "", now.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }));
  node.dateTime = now.toISOString();
  return node;
}

function append(item) {
  const stick = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
  log.append(item);
  if (stick) log.scrollTop = log.scrollHeight;
}

function system(...parts) {
  const item = el("li", "system");
  item.append(stamp());
  for (const part of parts) item.append(typeof part === "string" ? part : el("strong", "", part.name));
  append(item);
}

function chat(who, text, mine) {
  const item = el("li", mine ? "msg mine" : "msg other");
  item.style.setProperty("--hue", String(hue(who)));
  const bubble = el("div", "bubble");
  const meta = el("div", "meta");
  meta.append(el("span", "who", mine ? "You" : who), stamp());
  const rtt = el("span", "rtt");
  if (mine) meta.append(rtt);
  bubble.append(meta, el("div", "text", text));
  item.append(avatar(who), bubble);
  append(item);
  return { item, rtt };
}

function renderUsers() {
  users.replaceChildren(...Array.from(online).sort().map((user) => {
    const item = el("li");
    item.append(avatar(user), el("span", "name", user));
    if (user === me) item.append(el("span", "you", "you"));
    return item;
  }));
  $("count").textContent = String(online.size);
}

function setState(state, text) {
  $("state").dataset.state = state;
  $("state-text").textContent = text;
  $("state").title = text; // the pill may cut a long name short
  const closed = state === "closed";
  nameInput.disabled = !closed;
  $("open").disabled = !closed;
  $("close").disabled = closed;
  messageInput.disabled = closed; // keep typing while it reconnects
  // While reconnecting the client queues what is sent: it goes out, in
  // order, once the connection is back (shown as pending until then).
  $("send").disabled = state !== "open" && state !== "reconnecting";
  $("attach").disabled = state !== "open";
  $("people").classList.toggle("stale", state !== "open");
  $("empty-text").textContent = closed
    ? "Pick a name and press Enter to join."
    : state === "open"
    ? "No messages yet. Say hello!"
    : "Connecting…";
}

function stopCountdown() {
  if (countdown !== null) clearInterval(countdown);
  countdown = null;
}

// Images travel as bytes (binary codec), shown from blob: URLs; raster only.
const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const MAX_IMAGE = 900 * 1024;

function isImage(message) {
  return message !== null && typeof message === "object" &&
    message.image instanceof Uint8Array && IMAGE_TYPES.includes(message.type);
}

function showImage(who, message, mine) {
  const shown = chat(who, "", mine);
  const img = document.createElement("img");
  img.alt = "Image from " + (mine ? "you" : who);
  img.src = URL.createObjectURL(new Blob([message.image], { type: message.type }));
  shown.item.querySelector(".text").append(img);
  return shown;
}

async function sendImage(file) {
  const current = client;
  if (!file || current?.state !== "open") return;
  if (!IMAGE_TYPES.includes(file.type)) return system("Only PNG, JPEG, GIF and WebP images can be sent");
  if (file.size > MAX_IMAGE) return system("Images are limited to 900 KB");
  if (current.protocol !== "duplex.v1.bin") return system("This server does not take images");
  const message = { image: new Uint8Array(await file.arrayBuffer()), type: file.type };
  const { item, rtt } = showImage(me, message, true);
  rtt.textContent = "sending…";
  try {
    await current.request(message);
    rtt.textContent = "✓ sent";
    rtt.classList.add("done");
  } catch (error) {
    item.classList.add("failed");
    rtt.textContent = "✗ not delivered";
    rtt.title = error.message;
  }
}

function describe(message) {
  return typeof message === "string" ? message : JSON.stringify(message);
}

async function refreshUsers(current) {
  try {
    const list = await current.call("users.list", null);
    if (current !== client) return;
    online.clear();
    for (const user of list) online.add(user);
    renderUsers();
  } catch (error) {
    if (current === client) system("Could not load who is online: " + error.message);
  }
}

function ended(text) {
  stopCountdown();
  client = null;
  window.duplex = undefined;
  online.clear();
  renderUsers();
  setState("closed", "Offline");
  if (text) system(text);
}

async function open(name) {
  me = name;
  everOpen = false;
  lost = false;
  try { localStorage.setItem("duplex.name", name); } catch { /* storage may be off */ }
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("user", name);
  const current = new Client(url.href, { minDelay: 300, maxDelay: 5000, codec: binaryCodec });
  client = current;
  window.duplex = current;
  current.onNotify((message, frame) => {
    if (current !== client) return;
    if (isImage(message)) showImage(frame.from ?? "unknown", message, false);
    else chat(frame.from ?? "unknown", describe(message), false);
  });
  current.on("presence.joined", ({ user }) => {
    if (current !== client) return;
    online.add(user);
    renderUsers();
    system({ name: user }, " joined");
  });
  current.on("presence.left", ({ user }) => {
    if (current !== client) return;
    online.delete(user);
    renderUsers();
    system({ name: user }, " left");
  });
  current.addEventListener("open", () => {
    if (current !== client) return;
    stopCountdown();
    setState("open", "Online as " + me);
    if (everOpen) {
      const queued = log.querySelectorAll(".msg.pending").length;
      system(queued ? "Reconnected: sending " + queued + " queued message" + (queued === 1 ? "" : "s") : "Reconnected");
    }
    else system("You joined as ", { name: me });
    everOpen = true;
    lost = false;
    refreshUsers(current);
  });
  current.addEventListener("reconnecting", (event) => {
    if (current !== client) return;
    stopCountdown();
    const until = performance.now() + event.delay;
    const tick = () => {
      const left = (until - performance.now()) / 1000;
      setState(
        "reconnecting",
        left > 0.05
          ? "Reconnecting in " + left.toFixed(1) + " s · attempt " + event.attempt
          : "Reconnecting… attempt " + event.attempt,
      );
      if (left <= 0.05) stopCountdown();
    };
    tick();
    countdown = setInterval(tick, 100);
  });
  current.addEventListener("close", (event) => {
    if (current !== client || !everOpen) return;
    if (current.state === "reconnecting") {
      if (!lost) system("Connection lost (" + event.code + "): reconnecting by itself");
      lost = true;
      setState("reconnecting", "Reconnecting…");
    } else if (current.state === "closed") {
      ended("Disconnected by the server (" + event.code + ")");
    }
  });
  setState("connecting", "Connecting…");
  try {
    await current.connect();
    if (current === client) messageInput.focus();
  } catch (error) {
    if (current === client) {
      ended("Could not connect: " + error.message);
      nameInput.focus();
    }
    await current.close();
  }
}

function nameProblem(text) {
  $("name-problem").textContent = text;
  nameInput.setAttribute("aria-invalid", text ? "true" : "false");
}

nameInput.addEventListener("input", () => nameProblem(""));

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = nameInput.value.trim();
  if (!name) {
    nameProblem("A name cannot be only spaces: type at least one letter or digit.");
    nameInput.focus();
    return;
  }
  nameProblem("");
  if (client === null) open(name);
});

$("close").addEventListener("click", async () => {
  const closing = client;
  if (closing === null) return;
  ended("You left the chat");
  nameInput.focus();
  await closing.close();
});

$("send-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = messageInput.value;
  const current = client;
  const state = current?.state;
  if (!text.trim() || (state !== "open" && state !== "reconnecting")) return;
  messageInput.value = "";
  lastSent = text;
  const { item, rtt } = chat(me, text, true);
  // Offline, the client queues the request and sends it on reconnect.
  const queued = state !== "open";
  if (queued) {
    item.classList.add("pending");
    rtt.textContent = "pending: sent on reconnect";
  } else rtt.textContent = "sending…";
  const started = performance.now();
  const sent = () => {
    item.classList.remove("pending");
    rtt.textContent = "sending…";
  };
  if (queued) current.addEventListener("open", sent, { once: true });
  try {
    const reply = await current.request(text);
    const ms = performance.now() - started;
    const tick = reply === "ok" ? "✓ " : "";
    if (queued) {
      // The time includes the wait for the connection: not a round trip.
      rtt.textContent = tick + "sent on reconnect";
      rtt.title = "Queued while offline, sent once reconnected, answered " + JSON.stringify(reply);
    } else {
      rtt.dataset.rtt = ms.toFixed(3);
      rtt.textContent = tick + (ms < 10 ? ms.toFixed(1) : Math.round(ms)) + " ms";
      rtt.title = "Round-trip time of request(): relayed to everyone, answered " + JSON.stringify(reply);
    }
    rtt.classList.add("done");
  } catch (error) {
    item.classList.remove("pending");
    item.classList.add("failed");
    rtt.textContent = "✗ not delivered";
    rtt.title = error.message;
  } finally {
    current.removeEventListener("open", sent);
  }
});

$("attach").addEventListener("click", () => $("image").click());
$("image").addEventListener("change", () => {
  const input = $("image");
  sendImage(input.files[0]).finally(() => { input.value = ""; });
});
messageInput.addEventListener("paste", (event) => {
  const file = Array.from(event.clipboardData?.files ?? []).find((f) => f.type.startsWith("image/"));
  if (!file) return;
  event.preventDefault();
  sendImage(file);
});
const dropZone = log.parentElement;
dropZone.addEventListener("dragover", (event) => {
  if (!client || !event.dataTransfer?.types.includes("Files")) return;
  event.preventDefault();
  dropZone.classList.add("dropping");
});
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dropping"));
dropZone.addEventListener("drop", (event) => {
  dropZone.classList.remove("dropping");
  const file = event.dataTransfer?.files[0];
  if (!file) return;
  event.preventDefault();
  sendImage(file);
});

messageInput.addEventListener("keydown", (event) => {
  if (event.key === "ArrowUp" && messageInput.value === "" && lastSent) {
    event.preventDefault();
    messageInput.value = lastSent;
  } else if (event.key === "Escape") {
    messageInput.value = "";
  }
});

setState("closed", "Offline");
</script>
</body>
</html>
`;
}
