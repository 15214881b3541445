import assert from "node:assert/strict";
import { parseCliArgs, parseValue, UsageError } from "../../cli.ts";

Deno.test("parseCliArgs() reads flags in every form and the command", () => {
  const options = parseCliArgs(
    [
      "http://localhost:8000/ws",
      "--user=ada",
      "-t",
      "secret",
      "-p",
      "x.one",
      "--protocol",
      "x.two",
      "--timeout",
      "250",
      "-jq",
      "call",
      "sum",
      "[1, 2]",
    ].filter((arg) => arg !== "-jq").concat(["--json", "-q"]),
  );
  assert.equal(options.url, "ws://localhost:8000/ws?user=ada");
  assert.deepEqual(options.protocols, [
    "duplex.auth.secret",
    "x.one",
    "x.two",
  ]);
  assert.equal(options.timeout, 250);
  assert.equal(options.json, true);
  assert.equal(options.quiet, true);
  assert.equal(options.command, "call");
  assert.equal(options.method, "sum");
  assert.deepEqual(options.payload, [1, 2]);
});

Deno.test("parseCliArgs() defaults to interactive with reconnection; --no-reconnect and -- work", () => {
  const plain = parseCliArgs(["wss://example.com"]);
  assert.equal(plain.command, "interactive");
  assert.equal(plain.reconnect, true);
  assert.equal(plain.timeout, 10_000);
  const options = parseCliArgs([
    "ws://h",
    "--no-reconnect",
    "--",
    "notify",
    "--not-a-flag",
  ]);
  assert.equal(options.reconnect, false);
  assert.equal(options.payload, "--not-a-flag");
});

Deno.test("parseCliArgs() reads --answer and --count", () => {
  const options = parseCliArgs([
    "ws://h",
    "listen",
    "news",
    "-n",
    "3",
    "-a",
    "confirm=true",
    "-a",
    "*=null",
  ]);
  assert.equal(options.method, "news");
  assert.equal(options.count, 3);
  assert.deepEqual([...options.answers], [["confirm", true], ["*", null]]);
});

Deno.test("parseCliArgs() throws UsageError for every wrong command line", () => {
  for (
    const [argv, message] of [
      [[], /no URL/],
      [["ftp://h"], /scheme must be ws: or wss:/],
      [["not a url"], /Cannot parse the URL/],
      [["ws://h", "--bogus"], /unknown flag/],
      [["ws://h", "--timeout"], /needs a value/],
      [["ws://h", "--timeout", "soon"], /not a number of ms/],
      [["ws://h", "--json=yes"], /takes no value/],
      [["ws://h", "dance"], /commands are call, request/],
      [["ws://h", "call"], /the method is missing/],
      [["ws://h", "request"], /the message is missing/],
      [["ws://h", "notify", "a", "b"], /unexpected "b"/],
      [["ws://h", "listen", "-n", "0"], /not a count/],
      [["ws://h", "-a", "novalue"], /expected <method>=<value>/],
    ] as const
  ) {
    assert.throws(() => parseCliArgs(argv), (error: Error) => {
      assert.ok(error instanceof UsageError, String(error));
      assert.match(error.message, message);
      return true;
    });
  }
});

Deno.test("parseValue() takes JSON when it parses, else the text", () => {
  assert.equal(parseValue("42"), 42);
  assert.equal(parseValue('"42"'), "42");
  assert.equal(parseValue("null"), null);
  assert.deepEqual(parseValue('{"a":[1]}'), { a: [1] });
  assert.equal(parseValue("hello world"), "hello world");
});
