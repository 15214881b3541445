/**
 * The connection slots of a {@linkcode DuplexServer}: how many sockets it
 * holds in all and per client address. A slot is taken before the
 * authenticate hook is awaited (so concurrent upgrades cannot pass the
 * limit while the hook runs) and given back when the upgrade is refused or
 * the socket has closed.
 *
 * @module
 */

/** Why no slot was free. */
export type SlotRefusal = "total" | "address";

/** Slots in all and per address. */
export class ConnectionSlots {
  #max: number;
  #perAddress: number;
  #used = 0;
  #byAddress = new Map<string, number>();

  /**
   * @param max The most sockets in all.
   * @param perAddress The most sockets of one address.
   */
  constructor(max: number, perAddress: number) {
    this.#max = max;
    this.#perAddress = perAddress;
  }

  /** Slots in use. */
  get used(): number {
    return this.#used;
  }

  /**
   * Takes a slot for a client address (`undefined` when unknown: only the
   * total applies).
   *
   * @returns `undefined` when taken, else why not.
   */
  take(address: string | undefined): SlotRefusal | undefined {
    if (this.#used >= this.#max) return "total";
    if (address !== undefined) {
      const used = this.#byAddress.get(address) ?? 0;
      if (used >= this.#perAddress) return "address";
      this.#byAddress.set(address, used + 1);
    }
    this.#used++;
    return undefined;
  }

  /** Gives a slot back. */
  release(address: string | undefined): void {
    this.#used--;
    if (address === undefined) return;
    const used = this.#byAddress.get(address) ?? 0;
    if (used <= 1) this.#byAddress.delete(address);
    else this.#byAddress.set(address, used - 1);
  }
}

/**
 * The client address of a request: the peer's IP, or with `trustProxy` the
 * last entry of `X-Forwarded-For` (the one the proxy in front appended).
 *
 * @returns The address, or `undefined` when unknown.
 */
export function clientAddress(
  request: Request,
  info: Deno.ServeHandlerInfo | undefined,
  trustProxy: boolean,
): string | undefined {
  if (trustProxy) {
    const forwarded = request.headers.get("x-forwarded-for");
    if (forwarded !== null) {
      const last = forwarded.slice(forwarded.lastIndexOf(",") + 1).trim();
      if (last !== "") return last;
    }
  }
  const remote = info?.remoteAddr as Deno.NetAddr | undefined;
  return remote?.hostname;
}
