/**
 * What the in-process instruction tools share: the modules of the checkout
 * they measure (this one, or another one as the "before" of a change), and
 * the limits a bench server lifts so that one process can drive it as hard
 * as it can.
 *
 * @module
 */

/** A bench server's options: no rate limit, room for every request. */
export const UNLIMITED = {
  rateLimit: false,
  maxInFlight: 100_000,
  maxConnections: 100_000,
  maxConnectionsPerAddress: 100_000,
} as const;

/** The `Client` and `DuplexServer` classes of a checkout. */
export interface CheckoutModules {
  // deno-lint-ignore no-explicit-any
  Client: any;
  // deno-lint-ignore no-explicit-any
  DuplexServer: any;
}

/**
 * Loads the client and server entries of the checkout at `root`.
 *
 * @param root The checkout's root, as a URL ending in `/`.
 * @returns Its `Client` and `DuplexServer`.
 */
export async function checkoutModules(root: string): Promise<CheckoutModules> {
  const { Client } = await import(new URL("client.ts", root).href);
  const { DuplexServer } = await import(new URL("server.ts", root).href);
  return { Client, DuplexServer };
}
