/**
 * Preloaded into a benchmark server (`deno run --preload bench/handling_time.ts
 * …`, or `BENCH_HANDLING=1` with bench/server_cpu.ts): times the server's own
 * handling of each incoming message, from the entry of its `message` listener
 * to the first `send` that follows (the response), and prints the median and
 * 90th percentile in microseconds on stderr when the process exits. Works for
 * listeners set with `onmessage` (the raw server) and `addEventListener`
 * (Duplex). A `send` made after the listener returned (a batch flushed by
 * microtasks) counts up to that send. Two clock reads per message (about
 * 0.1 µs) are included in every figure.
 *
 * @module
 */

const handling: number[] = [];
let entered = -1;
const proto = WebSocket.prototype;

type Listener = EventListenerOrEventListenerObject;

function timed(listener: Listener): Listener {
  return typeof listener === "function"
    ? function (this: unknown, event: Event) {
      entered = performance.now();
      return listener.call(this, event);
    }
    : {
      handleEvent(event: Event) {
        entered = performance.now();
        return listener.handleEvent(event);
      },
    };
}

const add = proto.addEventListener;
proto.addEventListener = function (
  this: WebSocket,
  type: string,
  listener: Listener | null,
  options?: boolean | AddEventListenerOptions,
): void {
  if (listener === null) return;
  add.call(
    this,
    type,
    type === "message" ? timed(listener) : listener,
    options,
  );
} as typeof proto.addEventListener;

const onmessage = Object.getOwnPropertyDescriptor(proto, "onmessage")!;
Object.defineProperty(proto, "onmessage", {
  ...onmessage,
  set(this: WebSocket, listener: ((event: MessageEvent) => void) | null) {
    onmessage.set!.call(this, listener && timed(listener as Listener));
  },
});

const send = proto.send;
proto.send = function (
  this: WebSocket,
  data: string | ArrayBufferLike | Blob | ArrayBufferView,
): void {
  if (entered >= 0) {
    handling.push(performance.now() - entered);
    entered = -1;
  }
  send.call(this, data);
};

globalThis.addEventListener("unload", () => {
  const sorted = handling.sort((a, b) => a - b);
  const at = (q: number) =>
    ((sorted[Math.floor(sorted.length * q)] ?? 0) * 1000).toFixed(2);
  console.error(
    `server handling µs: n=${sorted.length} p50=${at(0.5)} p90=${at(0.9)}`,
  );
});
