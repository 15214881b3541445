import assert from "node:assert/strict";
import { deadline, MessageQueue, once } from "../_helpers.ts";
import { closeAndWait, open } from "../_server_helpers.ts";
import { redisTest } from "../_redis.ts";

const root = new URL("../..", import.meta.url);

/** Reads a stream line by line into `lines`, resolving waiters as they match. */
function collectLines(stream: ReadableStream<Uint8Array>): {
  lines: string[];
  next(match: RegExp, after?: number): Promise<string>;
  done: Promise<void>;
} {
  const lines: string[] = [];
  const waiters: Array<{ match: RegExp; resolve: (line: string) => void }> = [];
  const done = (async () => {
    let rest = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      rest += chunk;
      let newline;
      while ((newline = rest.indexOf("\n")) >= 0) {
        const line = rest.slice(0, newline);
        rest = rest.slice(newline + 1);
        lines.push(line);
        for (const waiter of [...waiters]) {
          if (waiter.match.test(line)) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve(line);
          }
        }
      }
    }
  })();
  return {
    lines,
    done,
    next(match, after = 0) {
      const found = lines.slice(after).find((line) => match.test(line));
      if (found !== undefined) return Promise.resolve(found);
      const { promise, resolve } = Promise.withResolvers<string>();
      waiters.push({ match, resolve });
      // Lines read from now on are all after `after`.
      return deadline(promise, 10_000, `a line matching ${match}`);
    },
  };
}

/** Spawns `server.ts` with `env`; stdout and stderr are collected. */
function spawnProgram(env: Record<string, string>, openFiles?: number) {
  const run = [Deno.execPath(), "run", "-A", "server.ts"];
  const child = new Deno.Command(openFiles ? "bash" : run[0], {
    args: openFiles
      ? ["-c", `ulimit -n ${openFiles} && exec "$0" "$@"`, ...run]
      : run.slice(1),
    cwd: root,
    env: { PORT: "0", NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = collectLines(child.stdout);
  const stderr = collectLines(child.stderr);
  return {
    child,
    stdout,
    stderr,
    async port(): Promise<number> {
      const listening = await stdout.next(/^Listening on /);
      return Number(listening.match(/:(\d+)\//)?.[1]);
    },
    async [Symbol.asyncDispose]() {
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

Deno.test({
  name:
    "server.ts serves the chat on PORT and exits 0 after closing with 1001 on SIGTERM",
  ignore: Deno.build.os === "windows",
  async fn() {
    await using program = spawnProgram({ DUPLEX_HOSTNAME: "127.0.0.1" });
    const { child, stdout, stderr } = program;
    const port = await program.port();
    assert.ok(port > 0, stdout.lines.join("\n"));
    const alice = await open(`ws://127.0.0.1:${port}/?user=alice`);
    const bob = await open(`ws://127.0.0.1:${port}/ws?user=bob`);
    await stdout.next(/connect user="bob"/);
    const bobQueue = new MessageQueue(bob);
    const aliceQueue = new MessageQueue(alice);
    alice.send('{"sequence":1,"type":1,"message":"hi"}');
    assert.deepEqual(await bobQueue.next(), {
      sequence: 1,
      type: 3,
      message: "hi",
      from: "alice",
    });
    assert.deepEqual(await aliceQueue.next(), {
      sequence: 1,
      type: 2,
      message: "ok",
    });
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(await health.text(), "ok\n");

    const aliceClosed = once<CloseEvent>(alice, "close");
    const bobClosed = once<CloseEvent>(bob, "close");
    child.kill("SIGTERM");
    assert.equal((await aliceClosed).code, 1001);
    assert.equal((await bobClosed).code, 1001);
    const status = await deadline(child.status, 10_000, "the exit");
    assert.equal(status.code, 0);
    await Promise.all([stdout.done, stderr.done]);
    assert.ok(
      stdout.lines.some((l) => /SIGTERM: shutting down/.test(l)),
      stdout.lines.join("\n"),
    );
    assert.ok(
      stdout.lines.some((l) =>
        /disconnect user="alice" id=\d+ code=1001 reason="Server shutting down"/
          .test(l)
      ),
      stdout.lines.join("\n"),
    );
    assert.deepEqual(stderr.lines, []);
  },
});

redisTest(
  "server.ts with REDIS_URL starts without Redis, chats locally, joins the other instance once Redis is up, and says goodbye on SIGTERM",
  async (redis) => {
    await redis.stop();
    await using a = spawnProgram({ REDIS_URL: redis.url });
    await using b = spawnProgram({ REDIS_URL: redis.url });
    const [portA, portB] = [await a.port(), await b.port()];
    // Redis is down: each instance serves and says so.
    await a.stderr.next(/redis (publisher|subscriber) cannot connect/);
    const alice = await open(`ws://127.0.0.1:${portA}/?user=alice`);
    const bob = await open(`ws://127.0.0.1:${portA}/?user=bob`);
    await a.stdout.next(/connect user="bob"/);
    const aliceQueue = new MessageQueue(alice);
    const bobQueue = new MessageQueue(bob);
    alice.send('{"sequence":1,"type":1,"message":"alone"}');
    assert.equal((await bobQueue.next()).from, "alice");
    assert.equal((await aliceQueue.next()).message, "ok");

    await redis.restart();
    await a.stdout.next(/redis up/);
    await b.stdout.next(/redis up/);
    const carol = await open(`ws://127.0.0.1:${portB}/?user=carol`);
    const carolQueue = new MessageQueue(carol);
    await b.stdout.next(/connect user="carol"/);
    // A knows carol once B's join (or heartbeat) arrived.
    const idB =
      (await b.stdout.next(/^\S+ cluster \S+ started on redis/)).split(" ")[2];
    await a.stdout.next(new RegExp(`instance ${idB} joined`));
    alice.send('{"sequence":2,"type":1,"message":"across"}');
    assert.deepEqual(await carolQueue.next(), {
      sequence: 2,
      type: 3,
      message: "across",
      from: "alice",
    });
    assert.equal((await aliceQueue.next()).message, "ok");
    assert.equal((await bobQueue.next()).message, "across");

    // B stops cleanly: carol gets 1001, A drops B at once (goodbye).
    const carolClosed = once<CloseEvent>(carol, "close");
    b.child.kill("SIGTERM");
    assert.equal((await carolClosed).code, 1001);
    assert.equal((await deadline(b.child.status, 10_000, "B's exit")).code, 0);
    await a.stdout.next(new RegExp(`instance ${idB} left \\(goodbye\\)`));
    for (const lines of [a.stderr.lines, b.stderr.lines]) {
      assert.ok(
        !lines.some((l) => /uncaught|unhandled/i.test(l)),
        lines.join("\n"),
      );
    }
    await Promise.all([closeAndWait(alice), closeAndWait(bob)]);
  },
);

Deno.test({
  name: "server.ts warns that ?user= is a claim unless it listens on loopback",
  ignore: Deno.build.os === "windows",
  async fn() {
    {
      await using program = spawnProgram({});
      await program.port();
      await program.stderr.next(/No authenticate hook/);
    }
    await using local = spawnProgram({ DUPLEX_HOSTNAME: "127.0.0.1" });
    await local.port();
    const alice = await open(`ws://127.0.0.1:${await local.port()}/?user=a`);
    await local.stdout.next(/connect user="a"/);
    await closeAndWait(alice);
    assert.ok(
      !local.stderr.lines.some((l) => /No authenticate hook/.test(l)),
      local.stderr.lines.join("\n"),
    );
  },
});

Deno.test({
  name:
    "server.ts behind a proxy survives running out of file descriptors: logs, listens again, keeps its WebSockets",
  ignore: Deno.build.os !== "linux",
  async fn() {
    await using program = spawnProgram({
      DUPLEX_HOSTNAME: "127.0.0.1",
      DUPLEX_BEHIND_PROXY: "1",
    }, 64);
    const port = await program.port();
    const firstListen = program.stdout.lines.findIndex((l) =>
      /^Listening on /.test(l)
    );
    const alice = await open(`ws://127.0.0.1:${port}/?user=alice`);
    const aliceQueue = new MessageQueue(alice);
    await program.stdout.next(/connect user="alice"/);
    // Idle TCP connections until the server's accept loop hits EMFILE.
    const idle: Deno.TcpConn[] = [];
    const failed = program.stderr.next(/HTTP server failed/);
    let refused = false;
    for (let i = 0; i < 100 && !refused; i++) {
      try {
        idle.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      } catch {
        refused = true;
      }
    }
    await failed;
    for (const conn of idle) conn.close();
    await program.stdout.next(/^Listening on /, firstListen + 1);
    const relisten = program.stdout.lines.findLastIndex((l) =>
      /^Listening on /.test(l)
    );
    const healthz = `http://127.0.0.1:${port}/healthz`;
    const health = await fetch(healthz).catch(async () => {
      // The server had not read the end of every idle connection yet: it
      // ran out once more, and says when it listens again.
      await deadline(
        program.stdout.next(/^Listening on /, relisten + 1),
        5_000,
        "the server to listen again after a second EMFILE",
      );
      return fetch(healthz);
    });
    assert.equal(await health.text(), "ok\n");
    alice.send('{"sequence":1,"type":1,"message":"still here"}');
    assert.deepEqual(await aliceQueue.next(), {
      sequence: 1,
      type: 2,
      message: "ok",
    });
    await closeAndWait(alice);
  },
});

Deno.test({
  name:
    "server.ts (guarded) drops 100 silent connections under ulimit -n 64 and keeps serving",
  ignore: Deno.build.os !== "linux",
  async fn() {
    await using program = spawnProgram({
      DUPLEX_HOSTNAME: "127.0.0.1",
      DUPLEX_HEADER_TIMEOUT: "300",
    }, 64);
    const port = await program.port();
    const alice = await open(`ws://127.0.0.1:${port}/?user=alice`);
    const aliceQueue = new MessageQueue(alice);
    await program.stdout.next(/connect user="alice"/);
    // Silent connections: more than the process has descriptors for. The
    // guard drops them (per-address cap, header timeout) or, out of
    // descriptors, accepts again later; none stays open.
    const idle: Deno.TcpConn[] = [];
    for (let i = 0; i < 100; i++) {
      idle.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
    const buffer = new Uint8Array(16);
    const ends = await deadline(
      Promise.all(idle.map((conn) => conn.read(buffer).catch(() => null))),
      15_000,
      "the server to drop 100 silent connections",
    );
    assert.ok(ends.every((end) => end === null));
    for (const conn of idle) conn.close();
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(await health.text(), "ok\n");
    alice.send('{"sequence":1,"type":1,"message":"still here"}');
    assert.deepEqual(await aliceQueue.next(), {
      sequence: 1,
      type: 2,
      message: "ok",
    });
    await closeAndWait(alice);
  },
});
