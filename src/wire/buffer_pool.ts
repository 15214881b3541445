/**
 * The buffers binary frames are encoded in and kept in, recycled: the
 * binary codec encodes into a lent buffer that it reuses for the next
 * frame, unless a session's outbox keeps that very buffer (instead of a
 * copy) until the frame is acknowledged, and then gives it back. A large
 * frame thus costs no fresh buffer (whose page faults cost more than a
 * copy) and, with a session, no copy either. One pool per process, bounded
 * by {@linkcode POOL_BYTES}.
 *
 * @module
 */

/** The most bytes the pool keeps. */
export const POOL_BYTES = 8 * 1024 * 1024;
/** Below this size a kept frame is a plain copy (a pooled one wastes more). */
const MIN_POOLED = 1024;
/** Free buffers by capacity. */
const pool = new Map<number, ArrayBuffer[]>();
let pooled = 0;
/** The buffer the codec encodes into, until an outbox keeps it. */
let lent: ArrayBuffer | undefined;

/** A capacity class: at most 1/8 above `size`, at least 4 KiB. */
function capacityOf(size: number): number {
  if (size <= 4096) return 4096;
  const step = 2 ** (Math.floor(Math.log2(size)) - 3);
  return Math.ceil(size / step) * step;
}

/** A buffer of `capacity` bytes: a free one, or a fresh one. */
function take(capacity: number): ArrayBuffer {
  const buffer = pool.get(capacity)?.pop();
  if (buffer === undefined) return new ArrayBuffer(capacity);
  pooled -= capacity;
  return buffer;
}

/**
 * Gives a buffer back to the pool, if it is of a class and there is room. A
 * buffer that {@linkcode recycle} would take makes room for itself: the
 * classes given back least recently lose buffers first. A pool full of one
 * size (an upload's chunks) would else refuse every buffer of the size in
 * use now, each of which would then cost a fresh one (a megabyte of page
 * faults per frame).
 */
function give(buffer: ArrayBuffer): void {
  const capacity = buffer.byteLength;
  if (capacity !== capacityOf(capacity)) return;
  if (pooled + capacity > POOL_BYTES && capacity * 4 <= POOL_BYTES) {
    for (const [other, list] of pool) {
      if (other === capacity) continue;
      while (list.length > 0 && pooled + capacity > POOL_BYTES) {
        list.pop();
        pooled -= other;
      }
      if (list.length === 0) pool.delete(other);
      if (pooled + capacity <= POOL_BYTES) break;
    }
  }
  if (pooled + capacity > POOL_BYTES) return;
  let list = pool.get(capacity);
  // Last in the map: the class given back most recently goes last.
  if (list !== undefined) pool.delete(capacity);
  else list = [];
  pool.set(capacity, list);
  list.push(buffer);
  pooled += capacity;
}

/**
 * Where to encode a binary frame of `size` bytes: a view of the lent buffer,
 * which the next call reuses (send the frame before encoding another), unless
 * {@linkcode keep} took it.
 *
 * @param size The frame's size in bytes.
 * @returns A view of `size` bytes, of undefined content.
 */
export function lend(size: number): Uint8Array<ArrayBuffer> {
  let buffer = lent;
  // A frame worth keeping gets a buffer of its own class, so that an outbox
  // can keep it as it is.
  if (
    buffer === undefined || buffer.byteLength < size ||
    (size >= MIN_POOLED && buffer.byteLength !== capacityOf(size))
  ) {
    if (buffer !== undefined) give(buffer);
    buffer = lent = take(capacityOf(size));
  }
  return new Uint8Array(buffer, 0, size);
}

/**
 * What an outbox keeps of a binary frame it sent: the frame itself when it
 * is the lent buffer (which the codec then no longer reuses), else a copy,
 * in a recycled buffer when there is one.
 *
 * @param data The frame as sent.
 * @returns Bytes that stay as they are until {@linkcode recycle}.
 */
export function keep(data: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const size = data.byteLength;
  if (size < MIN_POOLED) return data.slice();
  const capacity = capacityOf(size);
  if (
    data.buffer === lent && data.byteOffset === 0 &&
    lent.byteLength === capacity
  ) {
    lent = undefined;
    return data;
  }
  // Too large to pool and none free: a plain copy.
  if (capacity * 4 > POOL_BYTES && !pool.get(capacity)?.length) {
    return data.slice();
  }
  const copy = new Uint8Array(take(capacity), 0, size);
  copy.set(data);
  return copy;
}

/**
 * Gives the buffer of kept bytes back once nothing reads them any more.
 *
 * @param data What {@linkcode keep} returned.
 */
export function recycle(data: Uint8Array<ArrayBuffer>): void {
  if (data.byteOffset === 0 && data.buffer.byteLength * 4 <= POOL_BYTES) {
    give(data.buffer);
  }
}
