/**
 * How a session's outbox keeps the binary frames it sent until they are
 * acknowledged: by default a copy (`slice`) kept until acknowledged and then
 * dropped. The binary codec (`src/wire/binary_codec.ts`) installs the buffer
 * pool of `src/wire/buffer_pool.ts` when it loads, so that a frame it encoded
 * is kept as it is and its buffer recycled; a browser app without the binary
 * codec never sends a binary frame and ships no pool. The codec also installs
 * the size of a frame as it travels, which counts a detached frame's
 * attachments (`src/wire/attachments.ts`); by default its byte length.
 *
 * @module
 */

/** Keeps and gives back the bytes of sent binary frames. */
export interface FrameBytes {
  /** Bytes that stay as they are until {@linkcode FrameBytes.recycle}. */
  keep(data: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer>;
  /** Called once nothing reads what `keep` returned any more. */
  recycle(data: Uint8Array<ArrayBuffer>): void;
  /**
   * The bytes of a binary frame as it travels: with the binary codec, a
   * detached frame's attachments included (src/wire/attachments.ts).
   */
  size(data: object): number;
}

/** The outboxes' strategy: a copy, until the binary codec installs its pool. */
export const frameBytes: FrameBytes = {
  keep: (data) => data.slice(),
  recycle: () => {},
  size: (data) => (data as ArrayBuffer).byteLength ?? 0,
};

/**
 * A message's size as limits and acknowledgements count it: its bytes (a
 * detached frame's attachments included), or the UTF-16 units of a text.
 */
export function messageSize(data: unknown): number {
  return typeof data === "string"
    ? data.length
    : frameBytes.size(data as object);
}
