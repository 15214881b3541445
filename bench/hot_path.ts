/**
 * The server's own per-request path in process, without sockets: a
 * connection's peer (bench/duplex_server.ts's handler, the send budget,
 * the server's JSON codec) fed the lean client's request frames, its
 * responses written to a socket that only counts them. What this measures
 * is the part of a request the raw echo server does not pay; the runtime's
 * WebSocket work is left out, so a change of our code shows up clearly
 * while the machine is shared.
 *
 *   deno run -A bench/hot_path.ts [rounds] [root...]
 *
 * Each `root` is a checkout (default: this one), so the "before" of a change
 * can run in the same process, interleaved with the "after": each round
 * times every root in turn, for the original protocol and for `duplex.v1`.
 * Prints the median nanoseconds per request of each root and protocol.
 *
 * @module
 */

import { median } from "./stats.ts";

interface Socket {
  readyState: number;
  bufferedAmount: number;
  protocol: string;
  sent: number;
  send(data: unknown): void;
  close(): void;
  addEventListener(): void;
  removeEventListener(): void;
}

interface Receiving {
  receive(data: unknown): void;
}

function countingSocket(protocol: string): Socket {
  return {
    readyState: 1,
    bufferedAmount: 0,
    protocol,
    sent: 0,
    send() {
      this.sent++;
    },
    close() {},
    addEventListener() {},
    removeEventListener() {},
  };
}

/** A peer of root `root` as the bench server's connection has it. */
export async function connectionPeer(
  root: string,
  protocol: string,
): Promise<{ peer: Receiving; socket: Socket }> {
  const { DuplexServer } = await import(`${root}/server.ts`);
  const { serverPeer } = await import(`${root}/src/server/connection.ts`);
  const { peerOptions } = await import(`${root}/src/server/server_options.ts`);
  const { SendBudget } = await import(`${root}/src/server/send_budget.ts`);
  const options = {
    rateLimit: false,
    maxInFlight: 100_000,
    maxConnections: 100_000,
    maxConnectionsPerAddress: 100_000,
  };
  const chat = new DuplexServer(options);
  chat.onRequest(
    (message: unknown, context: { from: string; sequence: number }) => {
      chat.notify(message, {
        except: context.from,
        from: context.from,
        sequence: context.sequence,
      });
      return "ok";
    },
  );
  const socket = countingSocket(protocol);
  const budget = new SendBudget(16 << 20, 256 << 20);
  const budgeted = budget.wrap(socket as unknown as WebSocket);
  const peer = serverPeer(budgeted, "bench", protocol, {
    peerOptions: peerOptions(options),
    registry: chat.registry,
  }, {
    onClose: () => {},
    onHandlerError: (_user: string, error: unknown) => {
      throw error;
    },
  });
  return { peer, socket };
}

export const requests: string[] = [];
for (let i = 1; i <= 1000; i++) {
  requests.push(`{"sequence":${i},"type":1,"message":"hello"}`);
}

function time(peer: Receiving, socket: Socket, count: number): number {
  const start = performance.now();
  for (let i = 0; i < count; i++) peer.receive(requests[i % 1000]);
  const ns = (performance.now() - start) * 1e6 / count;
  if (socket.sent < count) throw new Error("Cannot time: responses missing");
  socket.sent = 0;
  return ns;
}

if (import.meta.main) {
  const [roundsText, ...given] = Deno.args;
  const rounds = Number(roundsText ?? 15);
  const roots = given.length
    ? given.map((root) => new URL(root, `file://${Deno.cwd()}/`).href)
    : [new URL("..", import.meta.url).href.replace(/\/$/, "")];
  const cases: {
    label: string;
    peer: Receiving;
    socket: Socket;
    ns: number[];
  }[] = [];
  for (const root of roots) {
    for (const protocol of ["", "duplex.v1"]) {
      const { peer, socket } = await connectionPeer(
        root.replace(/\/$/, ""),
        protocol,
      );
      cases.push({
        label: `${root.split("/").at(-1) || root} ${protocol || "original"}`,
        peer,
        socket,
        ns: [],
      });
    }
  }
  for (const each of cases) time(each.peer, each.socket, 50_000);
  for (let r = 0; r < rounds; r++) {
    for (const each of cases) {
      each.ns.push(time(each.peer, each.socket, 100_000));
    }
  }
  for (const each of cases) {
    console.log(
      `${each.label.padEnd(30)} ${
        median(each.ns).toFixed(0).padStart(5)
      } ns/request (min ${Math.min(...each.ns).toFixed(0)})`,
    );
  }
}
