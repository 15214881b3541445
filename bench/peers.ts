/**
 * The peers of `deno task bench --peers`: Socket.IO 4 and `ws` servers run
 * under Node, from npm packages installed on first use into bench/.peers
 * (gitignored) with `npm install --prefix`.
 *
 * @module
 */

/** Where the peers' npm packages are installed. */
export const PEERS_DIR: string = new URL(".peers", import.meta.url).pathname;

/** The npm packages of the peers, pinned to their major versions. */
export const PEER_PACKAGES: string[] = ["socket.io@4", "ws@8"];

/** What is installed, for the results file. */
export interface PeerVersions {
  /** `node --version`. */
  node: string;
  /** The installed `socket.io` version. */
  socketIo: string;
  /** The installed `ws` version. */
  ws: string;
}

async function installedVersion(name: string): Promise<string | undefined> {
  try {
    const text = await Deno.readTextFile(
      `${PEERS_DIR}/node_modules/${name}/package.json`,
    );
    return JSON.parse(text).version;
  } catch {
    return undefined;
  }
}

async function output(command: string, args: string[]): Promise<string> {
  const { success, stdout, stderr } = await new Deno.Command(command, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (!success) {
    throw new Error(
      `Cannot run ${command} ${args.join(" ")}: ${decoder.decode(stderr)}`,
    );
  }
  return decoder.decode(stdout).trim();
}

/**
 * Installs the peers' packages unless they are there already, and checks
 * that Node runs.
 *
 * @returns The versions in use.
 * @throws {Error} When Node or npm is missing or the install fails.
 */
export async function preparePeers(): Promise<PeerVersions> {
  const node = await output("node", ["--version"]);
  if (
    await installedVersion("socket.io") === undefined ||
    await installedVersion("ws") === undefined
  ) {
    console.error(`installing ${PEER_PACKAGES.join(", ")} into ${PEERS_DIR}`);
    await output("npm", [
      "install",
      "--prefix",
      PEERS_DIR,
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      ...PEER_PACKAGES,
    ]);
  }
  return {
    node,
    socketIo: await installedVersion("socket.io") ?? "?",
    ws: await installedVersion("ws") ?? "?",
  };
}
