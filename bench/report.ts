/**
 * Rendering of benchmark results: the Markdown tables (printed and written to
 * bench/results/*.md) and the SVG chart of ratios to raw Deno (hand-written,
 * no dependency).
 *
 * @module
 */

/** The servers a run can measure. */
export type ServerName = "raw" | "duplex" | "hand" | "ws" | "socketio";

/** Display names of the servers. */
export const SERVER_LABELS: Record<ServerName, string> = {
  raw: "raw Deno",
  duplex: "Duplex",
  hand: "hand-written Deno",
  ws: "ws (Node)",
  socketio: "Socket.IO 4",
};

/** Chart colours of the servers. */
export const SERVER_COLOURS: Record<ServerName, string> = {
  raw: "#718096",
  duplex: "#2b6cb0",
  hand: "#805ad5",
  ws: "#dd6b20",
  socketio: "#38a169",
};

/** A target: on Duplex/raw (`ratio`) or on Duplex's own figure (`value`). */
export interface Target {
  /** The comparison that must hold. */
  op: ">=" | "<=";
  /** The bound. */
  bound: number;
  /** What is compared: the ratio Duplex/raw, or Duplex's figure itself. */
  of: "ratio" | "value";
}

/** One figure of one workload (and wire) across the servers measured. */
export interface Row {
  /** Section title, e.g. "Server alone". */
  section: string;
  /** Workload label. */
  workload: string;
  /** The wire the lean client spoke to raw and Duplex ("" where n/a). */
  wire: string;
  /** What is measured, with its unit. */
  figure: string;
  /** Whether a higher figure is better. */
  higherIsBetter: boolean;
  /** The target, if the issue sets one. */
  target?: Target;
  /** `measured`, or why there is no figure (e.g. "not built yet"). */
  status: string;
  /** Median per server. */
  medians: Partial<Record<ServerName, number>>;
  /** Every run's figure per server (NaN for a failed run). */
  runs: Partial<Record<ServerName, number[]>>;
  /** A remark printed under the table. */
  note?: string;
}

/**
 * The ratio of a server's median to raw Deno's in the same run.
 *
 * @param row The row.
 * @param server The server.
 * @returns The ratio, or NaN when either figure is missing.
 */
export function ratio(row: Row, server: ServerName): number {
  const value = row.medians[server];
  const raw = row.medians.raw;
  if (value === undefined || raw === undefined || raw === 0) return NaN;
  return value / raw;
}

/**
 * Whether Duplex meets the row's target.
 *
 * @param row The row.
 * @returns true or false, or undefined when there is no target or figure.
 */
export function meetsTarget(row: Row): boolean | undefined {
  if (row.target === undefined || row.status !== "measured") return undefined;
  const { op, bound, of } = row.target;
  const value = of === "ratio" ? ratio(row, "duplex") : row.medians.duplex;
  if (value === undefined || Number.isNaN(value)) return undefined;
  return op === ">=" ? value >= bound : value <= bound;
}

/**
 * Formats a figure for a table: thousands separators from 100 up, one
 * decimal from 10 up, else three decimals.
 *
 * @param value The figure.
 * @returns The text ("—" for a missing figure).
 */
export function formatValue(value: number | undefined): string {
  if (value === undefined || Number.isNaN(value)) return "—";
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString("en-US");
  return value.toFixed(Math.abs(value) >= 10 ? 1 : 3);
}

/**
 * The spread of Duplex/raw across repeats: each repeat's Duplex figure over
 * the raw figure of the same repeat (they ran back to back).
 *
 * @param row The row.
 * @returns The lowest and highest ratio, or undefined with fewer than 2.
 */
export function ratioSpread(row: Row): [number, number] | undefined {
  const raw = row.runs.raw ?? [];
  const duplex = row.runs.duplex ?? [];
  const ratios: number[] = [];
  for (let i = 0; i < Math.min(raw.length, duplex.length); i++) {
    const r = duplex[i] / raw[i];
    if (Number.isFinite(r)) ratios.push(r);
  }
  if (ratios.length < 2) return undefined;
  return [Math.min(...ratios), Math.max(...ratios)];
}

function formatTarget(target: Target | undefined): string {
  if (target === undefined) return "";
  const sign = target.op === ">=" ? "≥" : "≤";
  return target.of === "ratio"
    ? `${sign} ${target.bound.toFixed(2)}×`
    : `${sign} ${target.bound.toLocaleString("en-US")}`;
}

function verdict(row: Row): string {
  if (row.status !== "measured") return row.status;
  const met = meetsTarget(row);
  return met === undefined ? "" : met ? "✓" : "✗";
}

/**
 * Renders the rows as Markdown, one table per section, with a ratio column
 * per server other than raw (Duplex's with its spread across repeats).
 *
 * @param rows The rows, in order.
 * @param servers The servers that appear in the run.
 * @returns The Markdown text.
 */
export function markdownTables(rows: Row[], servers: ServerName[]): string {
  const others = servers.filter((s) => s !== "raw");
  const out: string[] = [];
  const sections = [...new Set(rows.map((row) => row.section))];
  for (const section of sections) {
    const inSection = rows.filter((row) => row.section === section);
    out.push(`### ${section}`, "");
    out.push(
      `| Workload | Wire | Figure | ${
        servers.map((s) => SERVER_LABELS[s]).join(" | ")
      } | ${
        others.map((s) => `${SERVER_LABELS[s]}/raw`).join(" | ")
      } | Target | |`,
    );
    out.push(
      `| --- | --- | --- | ${servers.map(() => "---:").join(" | ")} | ${
        others.map(() => "---:").join(" | ")
      } | --- | --- |`,
    );
    for (const row of inSection) {
      const values = servers.map((s) => formatValue(row.medians[s]));
      const ratios = others.map((s) => {
        const r = ratio(row, s);
        if (Number.isNaN(r)) return "—";
        const spread = s === "duplex" ? ratioSpread(row) : undefined;
        return spread === undefined
          ? `${r.toFixed(2)}×`
          : `${r.toFixed(2)}× (${spread[0].toFixed(2)}–${
            spread[1].toFixed(2)
          })`;
      });
      out.push(
        `| ${row.workload} | ${row.wire || "—"} | ${row.figure} | ${
          values.join(" | ")
        } | ${ratios.join(" | ")} | ${formatTarget(row.target)} | ${
          verdict(row)
        } |`,
      );
    }
    const notes = inSection.filter((row) => row.note);
    if (notes.length > 0) out.push("");
    for (const row of notes) out.push(`- ${row.workload}: ${row.note}`);
    out.push("");
  }
  return out.join("\n");
}

function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(
    ">",
    "&gt;",
  );
}

/**
 * Draws the ratio of every server to raw Deno, one group of horizontal bars
 * per measured row that has a raw figure, one colour per server, with a line
 * at 1.00 (raw) and a tick at Duplex's target. p99 rows are left out (too
 * noisy to chart) and bars beyond 3× are clipped, their figure written.
 *
 * @param rows The rows (rows without a raw figure are left out).
 * @param servers The servers that appear in the run.
 * @param title The chart's title.
 * @returns The SVG document.
 */
export function svgChart(
  rows: Row[],
  servers: ServerName[],
  title: string,
): string {
  const others = servers.filter((s) => s !== "raw");
  const charted = rows.filter((row) =>
    row.status === "measured" && row.medians.raw !== undefined &&
    !row.figure.startsWith("p99") &&
    others.some((s) => !Number.isNaN(ratio(row, s)))
  );
  const bar = 13;
  const gap = 12;
  const left = 300;
  const plot = 480;
  const top = 56;
  const groupHeight = others.length * bar + gap;
  const height = top + charted.length * groupHeight + 40;
  const width = left + plot + 70;
  const maxRatio = Math.max(
    1.6,
    ...charted.flatMap((row) =>
      others.map((s) => ratio(row, s)).filter((r) => !Number.isNaN(r))
    ),
  );
  // Outliers beyond 3× are clipped (their figure is still written).
  const scale = Math.min(3, Math.ceil(maxRatio * 5) / 5);
  const step = scale > 2 ? 0.5 : 0.2;
  const x = (value: number) => left + (value / scale) * plot;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="10" y="18" font-size="14" font-weight="bold">${
      escapeXml(title)
    }</text>`,
  ];
  let legendX = 10;
  for (const server of others) {
    parts.push(
      `<rect x="${legendX}" y="30" width="10" height="10" fill="${
        SERVER_COLOURS[server]
      }"/>`,
      `<text x="${legendX + 14}" y="39">${SERVER_LABELS[server]}</text>`,
    );
    legendX += 24 + SERVER_LABELS[server].length * 6.5;
  }
  parts.push(
    `<text x="${
      legendX + 10
    }" y="39" fill="#4a5568">ratio to raw Deno in the same run (dashed: raw = 1.00; red: Duplex target)</text>`,
  );
  for (let tick = 0; tick <= scale + 1e-9; tick += step) {
    const tx = x(tick);
    parts.push(
      `<line x1="${tx}" y1="${top - 4}" x2="${tx}" y2="${
        height - 30
      }" stroke="#edf2f7"/>`,
      `<text x="${tx}" y="${height - 16}" text-anchor="middle" fill="#4a5568">${
        tick.toFixed(1)
      }</text>`,
    );
  }
  charted.forEach((row, index) => {
    const y = top + index * groupHeight;
    const better = row.higherIsBetter ? "" : ", lower is better";
    const label = `${row.workload}${row.wire ? ` [${row.wire}]` : ""}`;
    parts.push(
      `<text x="${left - 8}" y="${y + 10}" text-anchor="end">${
        escapeXml(label)
      }</text>`,
      `<text x="${left - 8}" y="${y + 22}" text-anchor="end" fill="#718096">${
        escapeXml(`${row.section.split(" (")[0]}: ${row.figure}${better}`)
      }</text>`,
    );
    others.forEach((server, i) => {
      const r = ratio(row, server);
      if (Number.isNaN(r)) return;
      const by = y + i * bar;
      const end = x(Math.min(r, scale));
      parts.push(
        `<rect x="${left}" y="${by}" width="${
          Math.max(1, end - left).toFixed(1)
        }" height="${bar - 2}" fill="${SERVER_COLOURS[server]}"/>`,
        `<text x="${end + 4}" y="${by + 9}">${r.toFixed(2)}${
          r > scale ? " (clipped)" : ""
        }</text>`,
      );
    });
    if (row.target?.of === "ratio") {
      const tx = x(row.target.bound);
      parts.push(
        `<line x1="${tx}" y1="${y - 2}" x2="${tx}" y2="${
          y + others.length * bar
        }" stroke="#e53e3e" stroke-width="2"/>`,
      );
    }
  });
  parts.push(
    `<line x1="${x(1)}" y1="${top - 6}" x2="${x(1)}" y2="${
      height - 30
    }" stroke="#1a202c" stroke-dasharray="3,2"/>`,
    `</svg>`,
  );
  return parts.join("\n") + "\n";
}

/** Cross-instance fan-out figures (bench/cluster_fanout.ts). */
export interface ClusterFigures {
  /** Deliveries/s across 2 instances on Redis. */
  clusterDeliveriesPerSecond: number;
  /** Deliveries/s on one instance with every receiver. */
  singleDeliveriesPerSecond: number;
}

/** Everything a run writes to bench/results/<name>.json. */
export interface Results {
  /** When the run ended (ISO 8601). */
  date: string;
  /** The machine, runtimes and load average. */
  machine: string;
  /** Deno's version. */
  deno: string;
  /** Node and the peers' versions, in a `--peers` run. */
  peers?: unknown;
  /** Repeats per figure. */
  repeats: number;
  /** Whether it was a BENCH_QUICK run. */
  quick: boolean;
  /** Every figure. */
  rows: Row[];
  /** RequestTracker figures, in the default run. */
  tracker?: unknown;
  /** Cross-instance fan-out, when measured. */
  cluster?: ClusterFigures;
  /** Client bundle sizes, in the default run. */
  bundle?: unknown;
  /** How long the run took. */
  seconds: number;
}

/**
 * The servers that appear in a run's rows, raw first.
 *
 * @param rows The rows.
 * @returns The servers.
 */
export function serversOf(rows: Row[]): ServerName[] {
  const seen = new Set(rows.flatMap((row) => Object.keys(row.medians)));
  return (["raw", "duplex", "hand", "ws", "socketio"] as const).filter((s) =>
    s === "raw" || s === "duplex" || seen.has(s)
  );
}

/**
 * The Markdown document of a run: title, machine, tables, cluster line.
 *
 * @param results The run.
 * @returns The Markdown text.
 */
export function resultsMarkdown(results: Results): string {
  const { cluster } = results;
  return [
    `Duplex benchmark — ${results.date} — median of ${results.repeats}${
      results.quick ? " (BENCH_QUICK: small counts, not for comparison)" : ""
    }`,
    "",
    `Machine: ${results.machine}.`,
    "",
    "Duplex/raw: ratio of the medians (lowest–highest ratio of one repeat's",
    "pair, a measure of the noise; server-alone, coalescing and sessions-on/off",
    "pairs are interleaved in blocks within one client process).",
    "",
    markdownTables(results.rows, serversOf(results.rows)),
    results.tracker === undefined
      ? "" // not a default run: the library figures were not measured
      : cluster === undefined
      ? "Cross-instance fan-out on Redis: not measured (quick run, or bench/cluster_fanout.ts failed: see the log)."
      : `Cross-instance fan-out on Redis (2 instances × 500 receivers, 1,000 notifications): ${
        Math.round(cluster.clusterDeliveriesPerSecond).toLocaleString("en-US")
      } deliveries/s; one instance with all 1,000 receivers: ${
        Math.round(cluster.singleDeliveriesPerSecond).toLocaleString("en-US")
      } deliveries/s.`,
    "",
    `Run took ${results.seconds.toFixed(0)} s.`,
  ].join("\n");
}

/**
 * Writes `<path>.json`, `<path>.md` and `<path>.svg` for a run, formatted
 * with `deno fmt`.
 *
 * @param path The path without extension.
 * @param results The run.
 */
export async function writeResults(
  path: string,
  results: Results,
): Promise<void> {
  await Deno.writeTextFile(
    `${path}.json`,
    JSON.stringify(results, null, 2) + "\n",
  );
  await Deno.writeTextFile(`${path}.md`, resultsMarkdown(results) + "\n");
  await Deno.writeTextFile(
    `${path}.svg`,
    svgChart(
      results.rows,
      serversOf(results.rows),
      `Duplex benchmark, ${results.date.slice(0, 10)}`,
    ),
  );
  // Format them as the repository's `deno fmt --check` gate expects.
  await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--quiet", `${path}.json`, `${path}.md`, `${path}.svg`],
    stdout: "null",
    stderr: "inherit",
  }).output();
}
