import assert from "node:assert/strict";
import { bearerToken, getCookie, offeredProtocols } from "../../server.ts";

function request(headers: Record<string, string>): Request {
  return new Request("http://localhost/", { headers });
}

Deno.test("offeredProtocols() lists the offered subprotocols in order", () => {
  assert.deepEqual(offeredProtocols(request({})), []);
  assert.deepEqual(
    offeredProtocols(request({ "sec-websocket-protocol": " a ,b,, c" })),
    ["a", "b", "c"],
  );
});

Deno.test("bearerToken() prefers the duplex.auth subprotocol, then the Authorization header", () => {
  assert.equal(
    bearerToken(request({
      "sec-websocket-protocol": "duplex.v1, duplex.auth.abc",
      authorization: "Bearer other",
    })),
    "abc",
  );
  assert.equal(bearerToken(request({ authorization: "bearer xyz" })), "xyz");
  assert.equal(
    bearerToken(request({ authorization: "Basic eHk6eg==" })),
    undefined,
  );
  assert.equal(
    bearerToken(request({ "sec-websocket-protocol": "duplex.auth." })),
    undefined,
  );
  assert.equal(bearerToken(request({})), undefined);
});

Deno.test("getCookie() finds one cookie among several and decodes it", () => {
  const r = request({ cookie: "a=1; session=x%20y;b=2; broken" });
  assert.equal(getCookie(r, "session"), "x y");
  assert.equal(getCookie(r, "b"), "2");
  assert.equal(getCookie(r, "broken"), undefined);
  assert.equal(getCookie(request({}), "a"), undefined);
  assert.equal(
    getCookie(request({ cookie: "bad=%E0%A4%A" }), "bad"),
    "%E0%A4%A",
  );
});
