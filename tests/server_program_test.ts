import assert from "node:assert/strict";
import { deadline, MessageQueue, once } from "./_helpers.ts";
import { open } from "./_server_helpers.ts";

const root = new URL("..", import.meta.url);

/** Reads a stream line by line into `lines`, resolving waiters as they match. */
function collectLines(stream: ReadableStream<Uint8Array>): {
  lines: string[];
  next(match: RegExp): Promise<string>;
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
    next(match) {
      const found = lines.find((line) => match.test(line));
      if (found !== undefined) return Promise.resolve(found);
      const { promise, resolve } = Promise.withResolvers<string>();
      waiters.push({ match, resolve });
      return deadline(promise, 10_000, `a line matching ${match}`);
    },
  };
}

Deno.test({
  name:
    "server.ts serves the chat on PORT and exits 0 after closing with 1001 on SIGTERM",
  ignore: Deno.build.os === "windows",
  async fn() {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "server.ts"],
      cwd: root,
      env: { PORT: "0", NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdout = collectLines(child.stdout);
    const stderr = collectLines(child.stderr);
    try {
      const listening = await stdout.next(/^Listening on /);
      const port = Number(listening.match(/:(\d+)\//)?.[1]);
      assert.ok(port > 0, listening);
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
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await child.status;
      await Promise.allSettled([stdout.done, stderr.done]);
    }
  },
});
