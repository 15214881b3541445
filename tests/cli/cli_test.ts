/**
 * The `duplex` CLI run as a real subprocess (`deno run cli.ts`) against a
 * real DuplexServer on 127.0.0.1.
 */

import assert from "node:assert/strict";
import { type AnyEndpoint, RemoteError } from "../../mod.ts";
import { DuplexServer } from "../../server.ts";
import { deadline } from "../_helpers.ts";
import { listen, until } from "../_server_helpers.ts";

const root = new URL("../..", import.meta.url);

/** A line reader over a child's stream that keeps every line. */
function collect(stream: ReadableStream<Uint8Array>) {
  const lines: string[] = [];
  let wake = (): void => {};
  const done = (async () => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      let newline;
      while ((newline = rest.indexOf("\n")) >= 0) {
        lines.push(rest.slice(0, newline));
        rest = rest.slice(newline + 1);
        wake();
      }
    }
    wake();
  })();
  let ended = false;
  done.finally(() => ended = true);
  return {
    lines,
    done,
    /** The first line (from `from` on) that matches, waiting for it. */
    async next(match: RegExp, from = 0): Promise<string> {
      const found = () => lines.slice(from).find((line) => match.test(line));
      const wait = (async () => {
        while (found() === undefined && !ended) {
          await new Promise<void>((resolve) => wake = resolve);
        }
        const line = found();
        if (line === undefined) {
          throw new Error(`No line matches ${match}: ${lines.join("\n")}`);
        }
        return line;
      })();
      return await deadline(wait, 10_000, `a line matching ${match}`);
    },
  };
}

/** Spawns the CLI with `args`; use with `await using`. */
function spawnCli(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "cli.ts", ...args],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = collect(child.stdout);
  const stderr = collect(child.stderr);
  const stdin = child.stdin.getWriter();
  const encoder = new TextEncoder();
  let inputClosed = false;
  return {
    child,
    stdout,
    stderr,
    write(line: string): Promise<void> {
      return stdin.write(encoder.encode(`${line}\n`));
    },
    async endInput(): Promise<void> {
      if (inputClosed) return;
      inputClosed = true;
      await stdin.close().catch(() => {});
    },
    /** Ends the input and waits for the exit code. */
    async exit(): Promise<number> {
      await this.endInput();
      const { code } = await deadline(child.status, 10_000, "the CLI to exit");
      await Promise.all([stdout.done, stderr.done]);
      return code;
    },
    async [Symbol.asyncDispose]() {
      await this.endInput();
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await child.status;
      await Promise.allSettled([stdout.done, stderr.done]);
    },
  };
}

/** Runs the CLI to the end with no input. */
async function runCli(args: string[]) {
  await using cli = spawnCli(args);
  const code = await cli.exit();
  return { code, out: cli.stdout.lines, err: cli.stderr.lines };
}

function server() {
  const duplex = new DuplexServer<AnyEndpoint, AnyEndpoint>();
  duplex.handle("sum", (numbers: number[]) => numbers.reduce((a, b) => a + b));
  duplex.handle("refuse", () => {
    throw new RemoteError({ code: "FORBIDDEN", message: "Not you" });
  });
  duplex.handle(
    "slow",
    (_, { signal }) =>
      new Promise((_, reject) =>
        signal.addEventListener("abort", () => reject(signal.reason), {
          once: true,
        })
      ),
  );
  duplex.onRequest((message, { from }) => `${from} said ${message}`);
  const http = listen(duplex);
  return {
    duplex,
    http,
    url: `ws://127.0.0.1:${http.addr.port}/`,
    async [Symbol.asyncDispose]() {
      await duplex.shutdown();
      await http.shutdown();
    },
  };
}

Deno.test("cli call prints the result and exits 0; --json adds the latency", async () => {
  await using s = server();
  const text = await runCli([s.url, "-u", "ada", "call", "sum", "[1,2,3]"]);
  assert.equal(text.code, 0, text.err.join("\n"));
  assert.deepEqual(text.out, ["6"]);
  assert.match(
    text.err.join("\n"),
    /connected to .* \(subprotocol duplex\.v1\)/,
  );
  assert.match(text.err.join("\n"), /ok in \d+(\.\d)? ms/);

  const json = await runCli([s.url, "-u", "ada", "--json", "request", "hi"]);
  assert.equal(json.code, 0);
  assert.equal(json.out.length, 1);
  const line = JSON.parse(json.out[0]);
  assert.equal(line.ok, true);
  assert.equal(line.result, "ada said hi");
  assert.equal(typeof line.ms, "number");
  assert.deepEqual(json.err, []);
});

Deno.test("cli exit codes: remote error 1, usage 2, refused 3, timeout 4", async () => {
  await using s = server();
  const refused = await runCli([
    s.url,
    "-u",
    "ada",
    "--json",
    "call",
    "refuse",
  ]);
  assert.equal(refused.code, 1);
  const error = JSON.parse(refused.out[0]);
  assert.deepEqual(error.error, { code: "FORBIDDEN", message: "Not you" });

  const usage = await runCli([s.url, "call"]);
  assert.equal(usage.code, 2);
  assert.match(usage.err[0], /the method is missing/);

  // No user: the server refuses the handshake with 400.
  const noUser = await runCli([s.url, "call", "sum", "[1]"]);
  assert.equal(noUser.code, 3);
  assert.match(noUser.err.join("\n"), /CONNECT_FAILED.*400/);

  const slow = await runCli([
    s.url,
    "-u",
    "ada",
    "--timeout",
    "50",
    "call",
    "slow",
  ]);
  assert.equal(slow.code, 4);
  assert.match(slow.err.join("\n"), /REQUEST_TIMEOUT/);
});

Deno.test("cli notify and emit reach the server's listeners with the user", async () => {
  await using s = server();
  const got: unknown[] = [];
  const both = Promise.withResolvers<void>();
  s.duplex.onNotify((message, frame) => {
    got.push([frame.from, message]);
    if (got.length === 2) both.resolve();
  });
  s.duplex.on("typing", (payload: unknown, frame) => {
    got.push([frame.from, frame.method, payload]);
    if (got.length === 2) both.resolve();
  });
  const notify = await runCli([s.url, "-u", "ada", "-q", "notify", "hello"]);
  assert.equal(notify.code, 0);
  assert.deepEqual(notify.out, ["true"]);
  const emit = await runCli([
    s.url,
    "-u",
    "bob",
    "-q",
    "emit",
    "typing",
    '{"room":"lobby"}',
  ]);
  assert.equal(emit.code, 0);
  await deadline(both.promise);
  assert.deepEqual(got, [["ada", "hello"], ["bob", "typing", {
    room: "lobby",
  }]]);
});

Deno.test("cli listen prints notifications as they come and stops after --count", async () => {
  await using s = server();
  await using cli = spawnCli([
    s.url,
    "-u",
    "ada",
    "--json",
    "listen",
    "-n",
    "2",
  ]);
  await until(s.duplex, () => s.duplex.isOnline("ada"));
  await cli.stdout.next(/"type":"open"/);
  s.duplex.notify("hi", { to: "ada", from: "bob" });
  s.duplex.emit("news", { id: 1 }, { to: "ada" });
  assert.equal(await cli.exit(), 0);
  const events = cli.stdout.lines.map((line) => JSON.parse(line));
  assert.deepEqual(events.filter((e) => e.type === "notify"), [
    { type: "notify", from: "bob", message: "hi" },
    { type: "notify", method: "news", message: { id: 1 } },
  ]);
});

Deno.test("cli listen answers the server's requests with --answer, else METHOD_NOT_FOUND", async () => {
  await using s = server();
  await using cli = spawnCli([
    s.url,
    "-u",
    "ada",
    "listen",
    "-n",
    "1",
    "--answer",
    'confirm={"sure":true}',
  ]);
  await until(s.duplex, () => s.duplex.isOnline("ada"));
  await cli.stderr.next(/connected/);
  assert.deepEqual(await s.duplex.call("confirm", "?", { to: "ada" }), {
    sure: true,
  });
  await assert.rejects(
    s.duplex.call("other", 1, { to: "ada" }),
    (error: RemoteError) => error.code === "METHOD_NOT_FOUND",
  );
  s.duplex.notify("bye", { to: "ada" });
  assert.equal(await cli.exit(), 0);
  assert.deepEqual(cli.stdout.lines, ["notify: bye"]);
});

Deno.test("cli interactive: commands from stdin, the server's requests answered by reply and fail", async () => {
  await using s = server();
  await using cli = spawnCli([s.url, "-u", "ada", "--json"]);
  await until(s.duplex, () => s.duplex.isOnline("ada"));
  await cli.stdout.next(/"type":"open"/);

  await cli.write("call sum [2, 3]");
  const result = JSON.parse(await cli.stdout.next(/"type":"result"/));
  assert.equal(result.id, 1);
  assert.equal(result.result, 5);
  assert.equal(typeof result.ms, "number");

  const asked = s.duplex.call("confirm", "Delete?", { to: "ada" });
  const request = JSON.parse(await cli.stdout.next(/"type":"request"/));
  assert.equal(request.method, "confirm");
  assert.equal(request.message, "Delete?");
  await cli.write(`reply ${request.id} true`);
  assert.equal(await asked, true);

  const refused = s.duplex.call("confirm", "Really?", { to: "ada" });
  const second = JSON.parse(
    await cli.stdout.next(/"type":"request".*Really/),
  );
  await cli.write(`fail ${second.id} FORBIDDEN Not today`);
  await assert.rejects(refused, (error: RemoteError) => {
    assert.equal(error.code, "FORBIDDEN");
    assert.equal(error.message, "Not today");
    return true;
  });

  await cli.write("reply 99 1");
  await cli.stdout.next(/"type":"problem".*no request #99/);
  await cli.write("request last words");
  // The end of the input waits for the answer, then exits 0.
  assert.equal(await cli.exit(), 0);
  const last = cli.stdout.lines.map((line) => JSON.parse(line)).find((e) =>
    e.type === "result" && e.id === 2
  );
  assert.equal(last.result, "ada said last words");
});

Deno.test("cli listen --no-reconnect exits 5 when the server closes the connection", async () => {
  await using s = server();
  await using cli = spawnCli([s.url, "-u", "ada", "--no-reconnect", "listen"]);
  await until(s.duplex, () => s.duplex.isOnline("ada"));
  await cli.stderr.next(/connected/);
  for (const connection of s.duplex.connectionsOf("ada")) {
    connection.peer.close(4003, "Go away");
  }
  assert.equal(await cli.exit(), 5);
  assert.match(cli.stderr.lines.join("\n"), /closed 4003 Go away/);
});
