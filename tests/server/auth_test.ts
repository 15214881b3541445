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

Deno.test("offers() and denoOffers() agree with the lists they stand for", async () => {
  const { denoOffers, offers, offeredList } = await import(
    "../../src/server/auth.ts"
  );
  const { Random } = await import("../_random.ts");
  const random = new Random(19);
  const names = ["duplex.v1", "duplex.session", "duplex.batch", "v1", "x"];
  const pieces = [...names, ",", ", ", " ", "\t", "duplex.v1x", "xduplex.v1"];
  for (let i = 0; i < 5_000; i++) {
    let header = "";
    for (let n = random.int(6); n > 0; n--) header += random.pick(pieces);
    const name = random.pick(names);
    assert.equal(
      offers(header, name),
      offeredList(header).includes(name),
      JSON.stringify({ header, name }),
    );
    assert.equal(
      denoOffers(header, name),
      header.split(", ").includes(name),
      JSON.stringify({ header, name }),
    );
  }
  assert.equal(offers(null, "duplex.v1"), false);
});
