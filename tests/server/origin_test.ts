import assert from "node:assert/strict";
import { isOriginAllowed } from "../../server.ts";

function request(origin?: string, host = "chat.example.com:8000"): Request {
  const headers = new Headers({ host });
  if (origin !== undefined) headers.set("origin", origin);
  return new Request(`http://${host}/`, { headers });
}

Deno.test("isOriginAllowed() allows the request's own host and no Origin by default", () => {
  assert.ok(isOriginAllowed(request()));
  assert.ok(isOriginAllowed(request("http://chat.example.com:8000")));
  // The scheme may differ behind a TLS-terminating proxy.
  assert.ok(isOriginAllowed(request("https://chat.example.com:8000")));
  assert.ok(isOriginAllowed(request("HTTP://CHAT.EXAMPLE.COM:8000")));
  assert.ok(
    isOriginAllowed(request("https://chat.example.com", "chat.example.com")),
  );
});

Deno.test("isOriginAllowed() refuses other hosts, ports, null and garbage by default", () => {
  assert.equal(isOriginAllowed(request("http://evil.example")), false);
  assert.equal(isOriginAllowed(request("http://chat.example.com:9000")), false);
  assert.equal(isOriginAllowed(request("http://chat.example.com")), false);
  assert.equal(
    isOriginAllowed(request("http://chat.example.com.evil.example:8000")),
    false,
  );
  assert.equal(isOriginAllowed(request("null")), false);
  assert.equal(isOriginAllowed(request("not a url")), false);
});

Deno.test("isOriginAllowed() with a list allows exactly the listed origins", () => {
  const list = ["https://app.example.com", "http://localhost:3000"];
  assert.ok(isOriginAllowed(request("https://app.example.com"), list));
  assert.ok(isOriginAllowed(request("https://app.example.com:443"), list));
  assert.ok(isOriginAllowed(request("http://localhost:3000"), list));
  assert.equal(isOriginAllowed(request("http://app.example.com"), list), false);
  assert.equal(
    isOriginAllowed(request("http://chat.example.com:8000"), list),
    false,
  );
  assert.ok(isOriginAllowed(request(), list));
  assert.ok(isOriginAllowed(request("https://anything.example"), ["*"]));
});

Deno.test("isOriginAllowed() with a function lets it decide", () => {
  const policy = (origin: string) => origin.endsWith(".example.com");
  assert.ok(isOriginAllowed(request("https://a.example.com"), policy));
  assert.equal(isOriginAllowed(request("https://example.org"), policy), false);
  assert.ok(isOriginAllowed(request("null"), (origin) => origin === "null"));
});
