/**
 * The feature benchmarks that live in files of their own, run by
 * `deno task bench` as child processes and turned into rows of its table
 * with their issues' targets:
 *
 * - `bench/sessions_bench.ts` (issue 14): sessions on vs off, idle memory
 *   per session, resume of 1,000 missed notifications;
 * - `bench/streams.ts` (issue 20): a stream upload against raw binary
 *   frames, a slow download, a 1 MiB binary round trip;
 * - `bench/presence.ts` (issue 15): presence storm and churn;
 * - `bench/nagle.ts`: a Deno `Client`'s notification followed by a request,
 *   with and without `duplex.nagle` (PROTOCOL.md "Nagle answers").
 *
 * A benchmark that fails leaves its rows out (its error is printed).
 *
 * @module
 */

import type { Row, Target } from "./report.ts";
import { spawnDeno } from "./process.ts";
import { median } from "./stats.ts";

const here = new URL(".", import.meta.url);

/** The sections, for BENCH_ONLY. */
export const OTHER_SECTIONS: Record<string, string> = {
  sessions: "Sessions on vs off",
  streams: "Binary and streams",
  presence: "Presence (chat server, duplex.v1 clients)",
  nagle: "Deno Client and Nagle's algorithm",
};

function value(op: ">=" | "<=", bound: number): Target {
  return { op, bound, of: "value" };
}

function row(
  section: string,
  workload: string,
  figure: string,
  measured: number,
  higherIsBetter: boolean,
  target?: Target,
  raw?: number,
): Row {
  return {
    section: OTHER_SECTIONS[section],
    workload,
    wire: "",
    figure,
    higherIsBetter,
    target,
    status: "measured",
    medians: raw === undefined
      ? { duplex: measured }
      : { raw, duplex: measured },
    runs: raw === undefined
      ? { duplex: [measured] }
      : { raw: [raw], duplex: [measured] },
  };
}

async function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<string> {
  const { success, stdout } = await spawnDeno(args, { env }).output();
  if (!success) throw new Error(`Cannot run ${args.join(" ")}: it failed`);
  return new TextDecoder().decode(stdout);
}

/** Sessions on vs off: `name: value unit` lines. */
async function sessions(quick: boolean): Promise<Row[]> {
  const text = await run(
    [
      "--v8-flags=--expose-gc",
      new URL("sessions_bench.ts", here).pathname,
      // Median of pairs of sides, as every other figure of the run.
      "--repeats",
      Deno.env.get("BENCH_REPEATS") ?? (quick ? "1" : "3"),
    ],
    quick ? { BENCH_QUICK: "1" } : {},
  );
  const figure = (name: string): number => {
    const line = text.split("\n").find((l) => l.startsWith(`${name}: `));
    if (line === undefined) throw new Error(`Cannot read "${name}"`);
    return Number(line.slice(name.length + 2).split(" ")[0]);
  };
  const pipeOff = figure("pipelined, sessions off");
  const pipeOn = figure("pipelined, sessions on");
  const fanOff = figure("fan-out, sessions off");
  const fanOn = figure("fan-out, sessions on");
  // Process CPU per unit, on/off (interleaved sides): ≤ 1.11 is the same
  // 10 % as the rate's ≥ 0.90.
  const pipeCpu = figure("pipelined CPU per unit on/off");
  const fanCpu = figure("fan-out CPU per unit on/off");
  const s = "sessions";
  return [
    row(s, "pipelined, 256 in flight", "requests/s, off", pipeOff, true),
    row(s, "pipelined, 256 in flight", "requests/s, on", pipeOn, true),
    row(
      s,
      "pipelined, 256 in flight",
      "on/off",
      pipeOn / pipeOff,
      true,
      value(">=", 0.9),
    ),
    row(
      s,
      "pipelined, 256 in flight",
      "CPU per request on/off",
      pipeCpu,
      false,
      value("<=", 1.11),
    ),
    row(s, "fan-out to 50 clients", "deliveries/s, off", fanOff, true),
    row(s, "fan-out to 50 clients", "deliveries/s, on", fanOn, true),
    row(
      s,
      "fan-out to 50 clients",
      "on/off",
      fanOn / fanOff,
      true,
      value(">=", 0.9),
    ),
    row(
      s,
      "fan-out to 50 clients",
      "CPU per delivery on/off",
      fanCpu,
      false,
      value("<=", 1.11),
    ),
    row(
      s,
      "idle session",
      "heap bytes over a plain connection",
      figure("idle session cost"),
      false,
      value("<=", 1024),
    ),
    row(
      s,
      "resume of 1,000 missed notifications",
      "p50 (ms)",
      figure("resume of 1,000 missed, p50"),
      false,
    ),
    row(
      s,
      "resume of 1,000 missed notifications",
      "p99 (ms)",
      figure("resume of 1,000 missed, p99"),
      false,
      value("<=", 50),
    ),
  ];
}

/** One size's memory figures of `bench/streams.ts`, in MiB. */
interface Live {
  stream: { keptMib: number; rssMib: number };
  raw: { keptMib: number; rssMib: number };
}

/** Binary and streams: one JSON object. */
async function streams(quick: boolean): Promise<Row[]> {
  const text = await run([
    new URL("streams.ts", here).pathname,
    "--upload-mib",
    quick ? "64" : "1024",
    // Median of interleaved repeats, as every other figure of the run.
    "--repeats",
    Deno.env.get("BENCH_REPEATS") ?? "3",
    "--rounds",
    "60",
  ]);
  const { upload, download, roundTrip, roundTripAfterUploads } = JSON.parse(
    text.slice(text.indexOf("{")),
  );
  const s = "streams";
  const up = `upload of ${upload.mib} MiB in 64 KiB chunks`;
  return [
    row(s, up, "stream MiB/s", upload.streamMibPerS, true),
    row(s, up, "raw binary frames MiB/s", upload.rawMibPerS, true),
    row(s, up, "stream/raw", upload.ratio, true, value(">=", 0.8)),
    ...([
      ["server memory kept alive, growth (MiB)", "keptMib"],
      ["server RSS growth, GC before samples (MiB)", "rssMib"],
    ] as const).map(([figure, key]) =>
      row(
        s,
        up,
        figure,
        Math.max(...upload.live.map((l: Live) => l.stream[key])),
        false,
        value("<=", 8),
        Math.max(...upload.live.map((l: Live) => l.raw[key])),
      )
    ),
    row(
      s,
      up,
      "server RSS growth as V8 leaves it (MiB)",
      upload.serverRssGrowthMib,
      false,
      undefined,
      upload.rawServerRssGrowthMib,
    ),
    row(
      s,
      `slow download, credit ${download.credit}`,
      "most chunks in flight",
      download.maxInFlight,
      false,
      value("<=", download.credit),
    ),
    ...([
      ["fresh server", roundTrip],
      ["server after the uploads", roundTripAfterUploads],
    ] as const).map(([where, figures]) =>
      row(
        s,
        `1 MiB binary round trip, ${where}`,
        // The raw column: the same exchange with no library (a JSON head,
        // then the bytes as a message of their own), the floor of a
        // framing that keeps the bytes uncopied.
        "time / raw echo (raw Deno: head + bytes, no library)",
        figures.ratio,
        false,
        value("<=", 1.1),
        figures.framedRatio,
      )
    ),
  ];
}

/** Presence: the JSON of its rows on the last line. */
async function presence(): Promise<Row[]> {
  const text = await run([new URL("presence.ts", here).pathname]);
  const lines = text.trim().split("\n");
  const rows = JSON.parse(lines[lines.length - 1]) as {
    name: string;
    perClient: number;
    maxPerClient: number;
    cpuMs: number;
    listP50?: number;
  }[];
  return rows.flatMap((measured) => {
    const s = "presence";
    const storm10k = /10,?000/.test(measured.name) &&
      /diff/.test(measured.name) && /storm|join/.test(measured.name);
    const out = [
      row(
        s,
        measured.name,
        "most presence frames to one client",
        measured.maxPerClient,
        false,
        storm10k ? value("<=", 40) : undefined,
      ),
      row(s, measured.name, "server CPU (ms)", measured.cpuMs, false),
    ];
    if (measured.listP50 !== undefined) {
      out.push(
        row(s, measured.name, "users.list p50 (ms)", measured.listP50, false),
      );
    }
    return out;
  });
}

/**
 * Nagle: a notification then a request from a Deno `Client`, against the
 * request alone, with `duplex.nagle` and without (the JSON last line).
 */
async function nagle(): Promise<Row[]> {
  const text = await run([new URL("nagle.ts", here).pathname]);
  const lines = text.trim().split("\n");
  const { runs } = JSON.parse(lines[lines.length - 1]) as {
    runs: {
      session: boolean;
      nagle: boolean;
      notifyThenRequest: number[];
      alone: number[];
    }[];
  };
  return runs.filter((run) => run.nagle).flatMap((run) => {
    const without = runs.find((other) =>
      !other.nagle && other.session === run.session
    );
    const workload = `notify then request, sessions ${
      run.session ? "on" : "off"
    }`;
    const s = "nagle";
    return [
      row(s, workload, "request alone, p50 (ms)", median(run.alone), false),
      row(
        s,
        workload,
        "notify + request, p50 (ms)",
        median(run.notifyThenRequest),
        false,
        value("<=", 5),
      ),
      ...(without === undefined ? [] : [
        row(
          s,
          workload,
          "notify + request without duplex.nagle, p50 (ms)",
          median(without.notifyThenRequest),
          false,
        ),
      ]),
    ];
  });
}

/**
 * Runs the selected benchmarks of other features.
 *
 * @param selected Whether a section (`sessions`, `streams`, `presence`,
 * `nagle`) runs.
 * @param quick Short runs.
 * @returns Their rows.
 */
export async function measureOthers(
  selected: (section: string) => boolean,
  quick: boolean,
): Promise<Row[]> {
  const rows: Row[] = [];
  const jobs: [string, () => Promise<Row[]>][] = [
    ["sessions", () => sessions(quick)],
    ["streams", () => streams(quick)],
    ["presence", () => presence()],
    ["nagle", () => nagle()],
  ];
  for (const [section, job] of jobs) {
    if (!selected(section)) continue;
    try {
      rows.push(...await job());
    } catch (error) {
      console.error(`${section}: ${error}`);
    }
  }
  return rows;
}
