/**
 * The demo chat page served at `/`. It loads the real browser bundle of
 * `client.ts` from `/client.js`; it makes no other request. Every string that
 * comes from a user is inserted with `textContent`, never as HTML.
 *
 * @module
 */

/** The page's HTML, CSS and script. */
export const DEMO_HTML: string = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Duplex chat</title>
<style>
  :root {
    --bg: #f6f7f9; --panel: #ffffff; --text: #1b1f24; --muted: #57606a;
    --accent: #0b5cad; --accent-text: #ffffff; --mine: #e7f0fb; --border: #d0d7de;
    --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e;
    color-scheme: light dark;
  }
  @media (prefers-color-scheme: dark) {
    :root {
      --bg: #0d1117; --panel: #161b22; --text: #e6edf3; --muted: #9da7b3;
      --accent: #4493f8; --accent-text: #0d1117; --mine: #1c2d45; --border: #30363d;
      --ok: #3fb950; --warn: #d29922; --bad: #f85149;
    }
  }
  * { box-sizing: border-box; }
  body {
    margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
    background: var(--bg); color: var(--text); min-height: 100vh;
    display: grid; grid-template-rows: auto 1fr;
  }
  header {
    display: flex; flex-wrap: wrap; gap: .75rem 1.5rem; align-items: center;
    justify-content: space-between; padding: .75rem 1.25rem;
    background: var(--panel); border-bottom: 1px solid var(--border);
  }
  h1 { font-size: 1.15rem; margin: 0; }
  h1 span { color: var(--muted); font-weight: 400; }
  h2 { font-size: .8rem; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); margin: 0 0 .5rem; }
  form { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; margin: 0; }
  label { font-weight: 600; }
  input[type=text] {
    font: inherit; color: inherit; background: var(--bg); border: 1px solid var(--border);
    border-radius: 6px; padding: .45rem .6rem; min-width: 0;
  }
  button {
    font: inherit; font-weight: 600; border-radius: 6px; padding: .45rem .9rem; cursor: pointer;
    border: 1px solid var(--accent); background: var(--accent); color: var(--accent-text);
  }
  button.secondary { background: transparent; color: var(--accent); }
  button:disabled { opacity: .45; cursor: not-allowed; }
  :focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
  #state { font-size: .9rem; padding: .2rem .6rem; border-radius: 999px; border: 1px solid var(--border); }
  #state[data-state=open] { color: var(--ok); border-color: var(--ok); }
  #state[data-state=connecting], #state[data-state=reconnecting] { color: var(--warn); border-color: var(--warn); }
  #state[data-state=closed] { color: var(--muted); }
  main {
    display: grid; grid-template-columns: 1fr 14rem; gap: 1rem; padding: 1rem 1.25rem;
    min-height: 0; max-width: 72rem; width: 100%; margin: 0 auto;
  }
  @media (max-width: 720px) { main { grid-template-columns: 1fr; } #people { order: -1; } }
  section, aside {
    background: var(--panel); border: 1px solid var(--border); border-radius: 10px; padding: 1rem;
    min-height: 0;
  }
  #chat { display: grid; grid-template-rows: 1fr auto; gap: .75rem; min-height: 60vh; }
  #log { list-style: none; margin: 0; padding: 0; overflow-y: auto; max-height: 65vh; }
  #log li { padding: .4rem .6rem; border-radius: 8px; margin-bottom: .35rem; overflow-wrap: anywhere; }
  #log li.mine { background: var(--mine); }
  #log li.system { color: var(--muted); font-style: italic; }
  #log .meta { font-size: .8rem; color: var(--muted); margin-right: .4rem; }
  #log .who { font-weight: 700; margin-right: .4rem; }
  #log .rtt { font-size: .8rem; color: var(--muted); margin-left: .4rem; white-space: nowrap; }
  #log .failed { color: var(--bad); }
  #send-form input { flex: 1 1 12rem; }
  #users { list-style: none; margin: 0; padding: 0; }
  #users li { padding: .2rem 0; overflow-wrap: anywhere; }
  #users li::before { content: "● "; color: var(--ok); }
  .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
</style>
</head>
<body>
<header>
  <h1>Duplex chat <span>— request / response / notify over one WebSocket</span></h1>
  <form id="login-form" autocomplete="off">
    <label for="name">Your name</label>
    <input id="name" name="name" type="text" maxlength="64" required placeholder="e.g. ada">
    <button id="open" type="submit">Open</button>
    <button id="close" type="button" class="secondary" disabled>Close</button>
  </form>
  <output id="state" data-state="closed" aria-live="polite">Disconnected</output>
</header>
<main>
  <section id="chat" aria-labelledby="chat-title">
    <div>
      <h2 id="chat-title">Messages</h2>
      <ul id="log" aria-live="polite" aria-relevant="additions"></ul>
    </div>
    <form id="send-form" autocomplete="off">
      <label for="message" class="visually-hidden">Message</label>
      <input id="message" name="message" type="text" maxlength="2000" placeholder="Write a message and press Enter" disabled>
      <button id="send" type="submit" disabled>Send</button>
    </form>
  </section>
  <aside id="people" aria-labelledby="people-title">
    <h2 id="people-title">Online (<span id="count">0</span>)</h2>
    <ul id="users"></ul>
  </aside>
</main>
<script type="module">
import { Client } from "/client.js";

const $ = (id) => document.getElementById(id);
const log = $("log"), users = $("users"), state = $("state");
let client = null, me = "", countdown = null;
const online = new Set();

function time() {
  return new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// Every user-supplied string goes through textContent: never HTML.
function line(kind, who, text) {
  const li = document.createElement("li");
  li.className = kind;
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = time();
  li.append(meta);
  if (who) {
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = who;
    li.append(name);
  }
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  li.append(body);
  log.append(li);
  log.scrollTop = log.scrollHeight;
  return li;
}

function renderUsers() {
  users.replaceChildren(...[...online].sort().map((user) => {
    const li = document.createElement("li");
    li.textContent = user === me ? user + " (you)" : user;
    return li;
  }));
  $("count").textContent = String(online.size);
}

function setState(name, text) {
  state.dataset.state = name;
  state.textContent = text;
  const open = name === "open";
  $("message").disabled = !open;
  $("send").disabled = !open;
  $("open").disabled = name !== "closed";
  $("name").disabled = name !== "closed";
  $("close").disabled = name === "closed";
}

function stopCountdown() {
  if (countdown !== null) clearInterval(countdown);
  countdown = null;
}

async function refreshUsers() {
  try {
    const list = await client.call("users.list", null);
    online.clear();
    for (const user of list) online.add(user);
    renderUsers();
  } catch (error) {
    line("system", "", "Could not load who is online: " + error.message);
  }
}

async function open(name) {
  me = name;
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("user", name);
  client = new Client(url.href, { minDelay: 250, maxDelay: 5000 });
  window.duplexClient = client;
  client.onNotify((message, frame) => line("other", frame.from ?? "?", String(message)));
  client.on("presence.joined", ({ user }) => {
    online.add(user);
    renderUsers();
    if (user !== me) line("system", "", user + " joined");
  });
  client.on("presence.left", ({ user }) => {
    online.delete(user);
    renderUsers();
    if (user !== me) line("system", "", user + " left");
  });
  client.addEventListener("open", () => {
    stopCountdown();
    setState("open", "Connected as " + me);
    refreshUsers();
  });
  client.addEventListener("reconnecting", (event) => {
    stopCountdown();
    const until = Date.now() + event.delay;
    const tick = () => {
      const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      setState("reconnecting", "Reconnecting in " + left + " s (attempt " + event.attempt + ")");
    };
    tick();
    countdown = setInterval(tick, 250);
  });
  client.addEventListener("close", () => {
    if (client && client.state === "closed") {
      stopCountdown();
      setState("closed", "Disconnected");
      online.clear();
      renderUsers();
    }
  });
  setState("connecting", "Connecting…");
  try {
    await client.connect();
  } catch (error) {
    line("system", "", "Could not connect: " + error.message);
    await client.close();
    client = null;
    setState("closed", "Disconnected");
  }
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("name").value.trim();
  if (name) open(name).then(() => $("message").focus());
});

$("close").addEventListener("click", async () => {
  const closing = client;
  client = null;
  stopCountdown();
  if (closing) await closing.close();
  setState("closed", "Disconnected");
  online.clear();
  renderUsers();
  line("system", "", "You left the chat");
  $("name").focus();
});

$("send-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = $("message");
  const text = input.value;
  if (!text.trim() || !client) return;
  input.value = "";
  const li = line("mine", me, text);
  const rtt = document.createElement("span");
  rtt.className = "rtt";
  rtt.textContent = "sending…";
  li.append(rtt);
  const started = performance.now();
  try {
    const reply = await client.request(text);
    const ms = performance.now() - started;
    rtt.textContent = (reply === "ok" ? "✓ " : "") + ms.toFixed(1) + " ms";
    rtt.dataset.rtt = ms.toFixed(3);
  } catch (error) {
    rtt.textContent = "not delivered: " + error.message;
    rtt.classList.add("failed");
  }
});
</script>
</body>
</html>
`;
