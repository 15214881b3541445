/**
 * The page served at `GET /` by the chat server. A placeholder: a minimal
 * chat over a raw WebSocket in the original protocol (the Demo issue
 * replaces it). Every string from a user is inserted as text, never as HTML.
 *
 * @module
 */

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Duplex chat</title>
<style>
  body { font: 16px system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
  #log { list-style: none; padding: 0; min-height: 10rem; border: 1px solid #ccc; }
  #log li { padding: 0.25rem 0.5rem; }
  form { display: flex; gap: 0.5rem; margin-top: 0.5rem; }
  input[name=text] { flex: 1; }
</style>
</head>
<body>
<h1>Duplex chat</h1>
<form id="join"><input name="user" placeholder="Your name" required maxlength="64"><button>Join</button></form>
<ul id="log" aria-live="polite"></ul>
<form id="send" hidden><input name="text" placeholder="Message" required autocomplete="off"><button>Send</button></form>
<script type="module">
  const log = document.getElementById("log");
  const join = document.getElementById("join");
  const send = document.getElementById("send");
  let socket;
  let sequence = 0;
  function line(text) {
    const item = document.createElement("li");
    item.textContent = text;
    log.append(item);
  }
  join.addEventListener("submit", (event) => {
    event.preventDefault();
    const user = join.elements.user.value.trim();
    const url = new URL("/ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("user", user);
    socket = new WebSocket(url, "duplex.v1");
    socket.onopen = () => { join.hidden = true; send.hidden = false; line("Connected as " + user); };
    socket.onclose = (event) => { send.hidden = true; join.hidden = false; line("Disconnected (" + event.code + ")"); };
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      if (frame.type === 3 && frame.method === "presence.joined") line(frame.message.user + " joined");
      else if (frame.type === 3 && frame.method === "presence.left") line(frame.message.user + " left");
      else if (frame.type === 3 && frame.method === undefined) line(frame.from + ": " + JSON.stringify(frame.message));
      else if (frame.type === 5) socket.send(JSON.stringify({ sequence: frame.sequence, type: 6 }));
    };
  });
  send.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = send.elements.text.value;
    socket.send(JSON.stringify({ sequence: ++sequence, type: 1, message: text }));
    line("me: " + JSON.stringify(text));
    send.reset();
  });
</script>
</body>
</html>
`;

/**
 * The demo chat page (a placeholder until the Demo issue lands).
 *
 * @returns A new 200 HTML response.
 *
 * @example Usage
 * ```ts
 * import { demoPage } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const response = demoPage();
 * assert.equal(response.headers.get("content-type"), "text/html; charset=utf-8");
 * assert.match(await response.text(), /<title>Duplex chat<\/title>/);
 * ```
 */
export function demoPage(): Response {
  return new Response(PAGE, {
    headers: {
      "content-type": "text/html; charset=utf-8",
      "content-security-policy":
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
      "x-content-type-options": "nosniff",
    },
  });
}
