/**
 * The documentation stays navigable and its code runs: every relative link
 * of README.md, SECURITY.md, PROTOCOL.md and docs/*.md reaches a file (and
 * a heading, for `#anchors` into Markdown), every guide has code that
 * `deno test --doc` runs, and the README stays a front page.
 *
 * @module
 */

import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);

/** Pages written on other branches, linked before they land. */
const ELSEWHERE = new Set(["docs/original-protocol.md", "docs/performance.md"]);

async function markdownFiles(): Promise<string[]> {
  const files = ["README.md", "SECURITY.md", "PROTOCOL.md"];
  for await (const entry of Deno.readDir(new URL("docs/", ROOT))) {
    if (entry.isFile && entry.name.endsWith(".md")) {
      files.push(`docs/${entry.name}`);
    }
  }
  return files.sort();
}

/** GitHub's anchor of a heading. */
function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[`*_]/g, "")
    .replace(/[^\p{L}\p{N} -]/gu, "").replace(/ /g, "-");
}

function headings(text: string): Set<string> {
  const withoutCode = text.replace(/^```[\s\S]*?^```/gm, "");
  return new Set(
    [...withoutCode.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1])),
  );
}

function read(path: string): Promise<string> {
  return Deno.readTextFile(new URL(path, ROOT));
}

function exists(path: string): Promise<boolean> {
  return Deno.stat(new URL(path, ROOT)).then(() => true, () => false);
}

Deno.test("docs: every relative link reaches a file and a heading", async () => {
  const broken: string[] = [];
  for (const file of await markdownFiles()) {
    const text = (await read(file)).replace(/^```[\s\S]*?^```/gm, "");
    const base = new URL(file, ROOT);
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/.test(target)) continue; // http:, https:, mailto:
      const [path, anchor] = target.split("#");
      const url = path ? new URL(path, base) : base;
      const relative = url.href.slice(ROOT.href.length);
      if (ELSEWHERE.has(relative) && !(await exists(relative))) continue;
      if (!(await exists(relative))) {
        broken.push(`${file}: ${target} (no file)`);
        continue;
      }
      if (anchor && relative.endsWith(".md")) {
        if (!headings(await read(relative)).has(anchor)) {
          broken.push(`${file}: ${target} (no heading #${anchor})`);
        }
      }
    }
  }
  assert.deepEqual(broken, []);
});

Deno.test("docs: every guide has code that deno test --doc runs", async () => {
  const task = JSON.parse(await read("deno.json")).tasks.test as string;
  assert.match(task, /--doc\b/, "deno task test runs the docs' code");
  const without: string[] = [];
  for (const file of await markdownFiles()) {
    if (!file.startsWith("docs/") || ELSEWHERE.has(file)) continue;
    const text = await read(file);
    // A block tagged exactly ts (not "ts ignore") is type-checked and run.
    if (!/^```ts\n/m.test(text)) without.push(file);
  }
  assert.deepEqual(without, []);
});

Deno.test("docs: the README stays a front page that links every guide", async () => {
  const readme = await read("README.md");
  const lines = readme.split("\n").length;
  // 290: the front page carries the delivery guarantees table (issue 14),
  // the scaling-out guarantees and local-vs-cluster tables (issue 15), the
  // performance chart and table of the last full run (issue 19) and an
  // upload and a download (issue 20); guides go to docs/.
  assert.ok(lines <= 290, `README.md has ${lines} lines: move guides to docs/`);
  for await (const entry of Deno.readDir(new URL("docs/", ROOT))) {
    if (entry.name.endsWith(".md")) {
      assert.ok(
        readme.includes(`(docs/${entry.name})`),
        `README.md does not link docs/${entry.name}`,
      );
    }
  }
});
