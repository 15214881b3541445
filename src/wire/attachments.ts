/**
 * Large attachments as messages of their own. The binary codec sends a frame
 * whose attachments hold at least {@linkcode MIN_DETACHED} bytes (or are
 * several of at least {@linkcode MIN_DETACHED_PART} each) as its
 * **head** (the binary message of PROTOCOL.md "Binary" with the top bit of
 * the header length set, the attachments' lengths and none of their bytes)
 * followed by one binary message per attachment, the bytes as the caller
 * gave them: no copy into a frame on either side (WebSocket `send()` copies
 * what it is given in any case, and a received message is already a buffer
 * of its own).
 *
 * The head stands for the whole frame wherever a frame travels in this
 * library (an outbox keeps it, a limit measures it, the codec decodes it):
 * {@linkcode partsOf} finds its attachments, {@linkcode sizeOf} its size,
 * {@linkcode wholeOf} the one-message form a store keeps.
 * {@linkcode gatherAttachments} readies a WebSocket: its `send` sends a
 * head's attachments after it, and it delivers a head, once its attachments
 * have arrived, as one `message` event.
 *
 * @module
 */

/** The header length's top bit: the attachments follow as messages. */
export const DETACHED = 0x8000_0000;
/**
 * The header length's next bit, in a head only: a session acknowledgement
 * count follows the attachments' lengths, as 8 bytes (a float64), where
 * both sides of a session agreed to it (PROTOCOL.md "Carried
 * acknowledgements").
 */
export const CARRIES = 0x4000_0000;
/** The bytes of a carried count. */
const COUNT_BYTES = 8;
/** Attachments of at least this many bytes in all travel detached. */
export const MIN_DETACHED = 256 * 1024;
/**
 * Several attachments of at least this many bytes each travel detached too
 * (packed upload chunks): a message of its own costs less than copying one
 * into a frame, and the receiver gets buffers of that size rather than one
 * over the allocator's mmap threshold (docs/performance.md, "Upload, eighth
 * round"). A single one stays inline below {@linkcode MIN_DETACHED}: two
 * messages for it cost more than the copy.
 */
export const MIN_DETACHED_PART = 64 * 1024;
/** The most attachments one detached frame may announce. */
export const MAX_PARTS = 4096;

/**
 * The attachments of each head, by the object that travels: the encoded
 * head (a `Uint8Array`) on the sending side, the received `ArrayBuffer`.
 */
const attachments = new WeakMap<object, Uint8Array[]>();

/**
 * The size of each head with its attachments, as they were when it was
 * made (a limit, or an outbox that counts it when it keeps it and again
 * when it lets it go, must not see it change), and the size a received head
 * announced that is over the limit (its attachments are dropped as they
 * come, and the head alone is delivered for the peer's own size limit to
 * refuse it: see {@linkcode gatherAttachments}).
 */
const sizes = new WeakMap<object, number>();

/**
 * The attachments of a detached frame's head, else undefined.
 *
 * @param data A frame as it travels.
 * @returns The attachments, in order.
 */
export function partsOf(data: unknown): Uint8Array[] | undefined {
  return typeof data === "object" && data !== null
    ? attachments.get(data)
    : undefined;
}

/**
 * Makes `head` the head of a detached frame with these attachments.
 *
 * @param head The head, as it travels.
 * @param parts The attachments, in order.
 * @returns `head`.
 */
export function detach<T extends object>(head: T, parts: Uint8Array[]): T {
  let size = (head as ArrayBuffer).byteLength ?? 0;
  for (const part of parts) size += part.byteLength;
  attachments.set(head, parts);
  sizes.set(head, size);
  return head;
}

/**
 * The bytes a binary frame holds, a detached frame's attachments included
 * (as they were when its head was made).
 *
 * @param data A binary frame as it travels.
 * @returns Its size in bytes.
 */
export function sizeOf(data: object): number {
  return sizes.get(data) ?? (data as ArrayBuffer).byteLength ?? 0;
}

/**
 * A binary frame as one message: a detached frame with its attachments
 * inline (the top bit of its header length cleared), any other as it is.
 *
 * @param data A binary frame as it travels.
 * @returns The frame in one message.
 */
export function wholeOf(
  data: Uint8Array<ArrayBuffer>,
): Uint8Array<ArrayBuffer> {
  const parts = attachments.get(data);
  if (parts === undefined) return data;
  const source = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const headerEnd = 4 + source.getUint32(0) - DETACHED;
  let size = data.byteLength;
  for (const part of parts) size += part.byteLength;
  const whole = new Uint8Array(size);
  const view = new DataView(whole.buffer);
  whole.set(data.subarray(0, headerEnd));
  view.setUint32(0, headerEnd - 4);
  let offset = headerEnd;
  for (const part of parts) {
    view.setUint32(offset, part.byteLength);
    // (A view of a buffer given away is empty, and cannot be read.)
    if (part.byteLength > 0) whole.set(part, offset + 4);
    offset += 4 + part.byteLength;
  }
  return whole;
}

/** Whether `head` lists the lengths its attachments have now. */
function announces(head: Uint8Array, parts: Uint8Array[]): boolean {
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const carried = view.getUint32(0) & CARRIES ? COUNT_BYTES : 0;
  let offset = head.byteLength - carried - 4 * parts.length;
  for (const part of parts) {
    if (view.getUint32(offset) !== part.byteLength) return false;
    offset += 4;
  }
  return true;
}

/** The sockets {@linkcode gatherAttachments} readied already. */
const ready = new WeakSet<WebSocket>();

/**
 * A socket's attachments under way: the head, the lengths, how many came,
 * and what came (`undefined`: over the limit, dropped as they come).
 */
interface Gathering {
  head: ArrayBuffer;
  lengths: number[];
  count: number;
  parts: Uint8Array[] | undefined;
}

/**
 * Readies a WebSocket for detached frames, before anything else listens to
 * it: its `send` sends a head's attachments right after the head (nothing
 * can come between: one synchronous call), and a received head is held,
 * with its attachments, until the last has arrived, whose `message` event
 * then goes on to the other listeners with the head as its data (the
 * peer's codec finds the attachments). A head that announces more than
 * `maxBytes` in all goes on at once, alone, with that size
 * ({@linkcode sizeOf}), and its attachments are dropped as they come: the
 * peer's size limit closes the connection with 1009 (as for any message
 * too big, which also ends a session rather than resume it to receive the
 * same frame again). A head that is malformed, or any message but the
 * announced attachment where one is due, closes the socket with 1002.
 * Readying a socket twice changes nothing.
 *
 * @param socket The socket, before it has a listener.
 * @param maxBytes The most bytes one frame may hold.
 */
export function gatherAttachments(
  socket: WebSocket,
  maxBytes: number = Infinity,
): void {
  if (ready.has(socket)) return;
  ready.add(socket);
  socket.binaryType = "arraybuffer";
  const send = socket.send.bind(socket);
  Object.defineProperty(socket, "send", {
    configurable: true,
    writable: true,
    value(data: string | ArrayBufferLike | ArrayBufferView): void {
      const parts = partsOf(data);
      if (parts === undefined) return send(data as ArrayBuffer);
      const head = data as Uint8Array<ArrayBuffer>;
      // An attachment whose buffer was resized or given away since (a
      // replay): the frame as one message, with what the bytes are now,
      // rather than a head that announces bytes that are not sent.
      if (!announces(head, parts)) return send(wholeOf(head));
      send(head);
      for (const part of parts) send(part as Uint8Array<ArrayBuffer>);
    },
  });
  let gathering: Gathering | undefined;
  const refuse = (event: Event, reason: string) => {
    event.stopImmediatePropagation();
    gathering = undefined;
    socket.close(1002, `Cannot read frame: ${reason}`);
  };
  socket.addEventListener("message", (event) => {
    const data: unknown = event.data;
    if (gathering !== undefined) {
      const { head, lengths, parts } = gathering;
      if (
        !(data instanceof ArrayBuffer) ||
        data.byteLength !== lengths[gathering.count]
      ) {
        return refuse(event, "attachment missing");
      }
      parts?.push(new Uint8Array(data));
      if (++gathering.count < lengths.length || parts === undefined) {
        return event.stopImmediatePropagation();
      }
      gathering = undefined;
      // The last attachment's event goes on as the frame's: the listeners
      // after this one see the head (no second event to make and dispatch).
      Object.defineProperty(event, "data", {
        configurable: true,
        value: detach(head, parts),
      });
      return;
    }
    if (!(data instanceof ArrayBuffer) || data.byteLength < 4) return;
    const view = new DataView(data);
    const word = view.getUint32(0);
    if (word < DETACHED) return;
    // A carried count (after the lengths) is the session's to take off.
    const end = data.byteLength - (word & CARRIES ? COUNT_BYTES : 0);
    const headerEnd = 4 + (word & ~(DETACHED | CARRIES));
    const count = (end - headerEnd) / 4;
    if (!(Number.isInteger(count) && count >= 1 && count <= MAX_PARTS)) {
      return refuse(event, "malformed detached header");
    }
    const lengths: number[] = [];
    let total = end;
    for (let offset = headerEnd; offset < end; offset += 4) {
      const length = view.getUint32(offset);
      lengths.push(length);
      total += length;
    }
    if (total <= maxBytes) {
      gathering = { head: data, lengths, count: 0, parts: [] };
      return event.stopImmediatePropagation();
    }
    // Too big: the head goes on alone, for the peer to refuse it (1009) as
    // any other message too big; its attachments are dropped as they come.
    gathering = { head: data, lengths, count: 0, parts: undefined };
    sizes.set(data, total);
  });
}

/**
 * A detached frame's head that carries a session acknowledgement count
 * ({@linkcode CARRIES}): a copy of the head (a few bytes: the attachments
 * stay where they are) with the count after the lengths. Never kept or
 * stored: it belongs to one connection, as a separate acknowledgement does.
 *
 * @param data A frame as it travels.
 * @param count The count to carry.
 * @returns The carrying head, or `undefined` when `data` is not a detached
 * frame's head whose attachments are as it announces.
 */
export function carry(
  data: object,
  count: number,
): Uint8Array<ArrayBuffer> | undefined {
  const parts = attachments.get(data);
  const head = data as Uint8Array<ArrayBuffer>;
  if (parts === undefined || !announces(head, parts)) return undefined;
  const out = new Uint8Array(head.byteLength + COUNT_BYTES);
  out.set(head);
  const view = new DataView(out.buffer);
  view.setUint32(0, view.getUint32(0) | CARRIES);
  view.setFloat64(head.byteLength, count);
  attachments.set(out, parts);
  sizes.set(out, sizes.get(head)!);
  return out;
}

/**
 * The count a received head carries, and the head without it (the frame as
 * the codec reads it, with the same attachments and size).
 *
 * @param data A received message, as {@linkcode gatherAttachments} gave it.
 * @returns The count (-1 when the 8 bytes are not a count) and the head, or
 * `undefined` when `data` carries none.
 */
export function uncarry(
  data: object,
): [count: number, head: Uint8Array<ArrayBuffer>] | undefined {
  if (!(data instanceof ArrayBuffer) || data.byteLength < 4 + COUNT_BYTES) {
    return undefined;
  }
  const view = new DataView(data);
  const word = view.getUint32(0);
  if (word < (DETACHED | CARRIES) >>> 0) return undefined;
  const end = data.byteLength - COUNT_BYTES;
  view.setUint32(0, word & ~CARRIES);
  const head = new Uint8Array(data, 0, end);
  const parts = attachments.get(data);
  if (parts !== undefined) attachments.set(head, parts);
  sizes.set(head, sizes.get(data) ?? end);
  // Not a count (NaN, a fraction, past 2^53 - 1): -1, which no side sent.
  const count = view.getFloat64(end);
  return [Number.isSafeInteger(count) && count >= 0 ? count : -1, head];
}
