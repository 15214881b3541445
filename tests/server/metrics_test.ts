import assert from "node:assert/strict";
import {
  LATENCY_BUCKETS,
  type MetricsSnapshot,
  ServerMetrics,
} from "../../server.ts";

const EMPTY: MetricsSnapshot = {
  connections: 0,
  users: 0,
  requestsInFlight: 0,
  framesIn: [0, 0, 0, 0, 0, 0, 0],
  framesOut: [0, 0, 0, 0, 0, 0, 0],
  dropped: 0,
  malformed: 0,
  rateLimited: 0,
};

Deno.test("ServerMetrics.render() writes cumulative histogram buckets", () => {
  const metrics = new ServerMetrics();
  metrics.observeRequest(0.0001);
  metrics.observeRequest(0.003);
  metrics.observeRequest(0.003);
  metrics.observeRequest(60);
  const lines = metrics.render(EMPTY).split("\n");
  const bucket = (le: string) =>
    lines.find((l) =>
      l.startsWith(`duplex_request_duration_seconds_bucket{le="${le}"} `)
    )?.split(" ")[1];
  assert.equal(bucket("0.0005"), "1");
  assert.equal(bucket("0.0025"), "1");
  assert.equal(bucket("0.005"), "3");
  assert.equal(bucket(String(LATENCY_BUCKETS.at(-1))), "3");
  assert.equal(bucket("+Inf"), "4");
  assert.ok(lines.includes("duplex_request_duration_seconds_count 4"));
  assert.equal(metrics.requestsTotal, 4);
});

Deno.test("ServerMetrics.render() writes every family with HELP and TYPE, labelled counters sorted", () => {
  const metrics = new ServerMetrics();
  metrics.countClose(1009);
  metrics.countClose(1000);
  metrics.countClose(1009);
  metrics.countRefused(403);
  const text = metrics.render({
    ...EMPTY,
    connections: 3,
    framesIn: [0, 5, 0, 1, 0, 2, 0],
    dropped: 7,
  });
  assert.ok(text.endsWith("\n"));
  const lines = text.split("\n");
  for (
    const expected of [
      "# TYPE duplex_connections gauge",
      "duplex_connections 3",
      'duplex_closes_total{code="1000"} 1',
      'duplex_closes_total{code="1009"} 2',
      'duplex_upgrades_refused_total{status="403"} 1',
      'duplex_frames_received_total{type="request"} 5',
      'duplex_frames_received_total{type="ping"} 2',
      "duplex_notifications_dropped_total 7",
      "# TYPE duplex_request_duration_seconds histogram",
    ]
  ) {
    assert.ok(lines.includes(expected), expected);
  }
  assert.ok(
    lines.indexOf('duplex_closes_total{code="1000"} 1') <
      lines.indexOf('duplex_closes_total{code="1009"} 2'),
  );
  // Every sample line is "name{labels} value" with a numeric value.
  for (const line of lines.filter((l) => l && !l.startsWith("#"))) {
    assert.match(line, /^[a-z_]+(\{[a-z]+="[^"]*"\})? -?[0-9.e+-]+$/, line);
  }
});
