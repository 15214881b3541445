/**
 * Streams over a {@linkcode Peer}: the consumer side (`ChunkQueue`, in
 * `chunk_queue.ts`), the producer side
 * ({@linkcode ChunkPump}, which pulls from an async iterable only while
 * credit lasts), {@linkcode consume} (a request whose result is read as a
 * stream), and {@linkcode Streams}, which routes a peer's stream frames
 * (types 12 to 17). See PROTOCOL.md, "Streams", and docs/streams.md.
 *
 * @module
 */

import { isStream } from "./sender.ts";
import { cancelled, ChunkQueue } from "./chunk_queue.ts";
import type { ErrorPayload, Frame, RequestFrame } from "../wire/protocol.ts";
import { handlerError } from "./incoming_requests.ts";
import { nextTurn } from "./next_turn.ts";
import type { RequestOptions } from "./peer_options.ts";

/**
 * The chunk type of a streamed result: `T` of an `AsyncIterable<T>` or
 * `ReadableStream<T>`; a plain result type stands for a one-chunk stream.
 *
 * @example Usage
 * ```ts
 * import type { ChunkOf } from "@duplex/ws";
 *
 * const line: ChunkOf<AsyncIterable<string>> = "hello";
 * ```
 */
export type ChunkOf<R> = R extends AsyncIterable<infer T> ? T
  : R extends ReadableStream<infer T> ? T
  : R;

/**
 * Options of `stream()` on a peer or a client.
 *
 * @example Usage
 * ```ts
 * import type { StreamOptions } from "@duplex/ws";
 *
 * const options: StreamOptions = { credit: 32, signal: AbortSignal.timeout(60_000) };
 * ```
 */
export interface StreamOptions {
  /**
   * How many chunks the producer may send ahead of the consumer (the
   * window): never more are in flight or buffered.
   *
   * @default {16}
   */
  credit?: number;
  /**
   * Aborting it stops the stream on both sides: the producer's signal
   * aborts and its iterator's `return()` runs; the loop throws
   * `signal.reason`.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * Milliseconds within which the whole stream must end; 0 disables it.
   *
   * @default {0}
   */
  timeout?: number;
}

/** The request options by which `stream()` asks for a streamed result. */
interface StreamCall extends RequestOptions {
  method?: string;
  credit?: number;
  queue?: ChunkQueue;
}

/** The default window, in chunks. */
export const DEFAULT_CREDIT = 16;

/**
 * The bytes an upload's window may hold: the responder's window starts at
 * {@linkcode DEFAULT_CREDIT} chunks and then holds as many chunks as fit
 * here at the largest size seen, from 4 to 32 (32 chunks of 64 KiB), enough
 * to keep a loopback connection busy while credit travels back (a larger
 * window costs the uploader more: a session keeps every chunk in flight in a
 * buffer of its own, and 64 of them in turn missed the CPU caches).
 */
const UPLOAD_BUDGET = 2_097_152; // 2 MiB (a literal: bundlers drop it unused)

const STREAM_NOT_REQUESTED: ErrorPayload = {
  code: "STREAM_NOT_REQUESTED",
  message: "Cannot answer request: the result is a stream (call stream())",
};

/** An iterator over a source (a ReadableStream without async iteration too). */
function iterate(source: AsyncIterable<unknown>): AsyncIterator<unknown> {
  if (Symbol.asyncIterator in source) return source[Symbol.asyncIterator]();
  const reader = (source as ReadableStream).getReader();
  return {
    next: () => reader.read() as Promise<IteratorResult<unknown>>,
    return: () => reader.cancel().then(() => ({ done: true, value: null })),
  };
}

/** Stops a source: its `return()` (or `cancel()`) runs; its failure is moot. */
function stop(iterator: AsyncIterator<unknown>): void {
  iterator.return?.()?.then(undefined, () => {});
}

/** Bytes of a binary chunk (packed chunks are binary), else -1. */
function bytesOf(chunk: unknown): number {
  return chunk instanceof ArrayBuffer || ArrayBuffer.isView(chunk)
    ? chunk.byteLength
    : -1;
}

/** Sends what a pump packed, at the end of the turn that pulled it. */
const sendPacked = (pump: ChunkPump) => pump.endTurn();

/**
 * The sending end of one stream: pulls a chunk from its source only when
 * the consumer has credit for it, so a slow consumer slows the source and
 * nothing piles up. Once the consumer lets it pack (an upload's first
 * credit frame with `pack`), the binary chunks it pulls in one turn of the
 * event loop go as one frame, up to that many bytes, when the turn ends or
 * the frame is full: never held on a timer.
 */
export class ChunkPump {
  #iterator: AsyncIterator<unknown>;
  #send: (message: unknown, chunks?: number) => void;
  #credit: number;
  /** Bytes of chunks one frame may carry (0: one chunk a frame). */
  #pack = 0;
  /** Chunks pulled and not sent yet (while packing). */
  #packed: unknown[] = [];
  #packedBytes = 0;
  /** Whether the end of this turn will send what is packed then. */
  #turnEnd = false;
  /** Chunks sent so far. */
  #sent = 0;
  /** Credit granted by frames (types 13, 16) so far. */
  #granted = 0;
  #wake: (() => void) | undefined;
  #stopped = false;
  /** Aborts the handler that produces it (a streamed result). */
  abort: ((reason: unknown) => void) | undefined;

  /**
   * Starts pumping.
   *
   * @param source The async iterable or ReadableStream.
   * @param credit The credit granted at first.
   * @param send Sends one chunk, or `chunks` chunks packed in an array.
   * @param finish Called once when the source ended (no argument) or
   * failed; not after {@linkcode ChunkPump.stop}.
   */
  constructor(
    source: AsyncIterable<unknown>,
    credit: number,
    send: (message: unknown, chunks?: number) => void,
    finish: (error?: unknown) => void,
  ) {
    this.#credit = credit;
    this.#send = send;
    this.#iterator = iterate(source);
    this.#run().then(
      (ended) => ended && finish(),
      (error) => this.#stopped || finish(error ?? new Error("Stream failed")),
    );
  }

  /**
   * Whether a credit frame was asked for: a reader grants credit only for
   * chunks it read, so the credit granted by frames never exceeds the
   * chunks sent (the first window comes with the request, or for an upload
   * in one frame that is not asked for).
   *
   * @param frame The credit frame (type 13 or 16).
   * @returns `true` when it grants no more than was sent.
   */
  asked(frame: { credit?: number }): boolean {
    return this.#granted + frame.credit! <= this.#sent;
  }

  /** Credit (types 13, 16) or the end of an upload's reading (17) arrived. */
  take(frame: { type: number; credit?: number; pack?: number }): void {
    if (frame.type === 17) return this.stop();
    // An upload's responder lets it pack (type 16 only).
    if (frame.type === 16 && frame.pack !== undefined) this.#pack = frame.pack;
    this.#granted += frame.credit!;
    this.#credit += frame.credit!;
    this.#wake?.();
  }

  /**
   * Stops the source (its `return()` runs) and the handler that produces
   * it; nothing more is sent. Idempotent.
   *
   * @param reason What the handler's signal says.
   */
  stop(reason: unknown = cancelled()): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#packed = [];
    this.abort?.(reason);
    this.#wake?.();
    stop(this.#iterator);
  }

  /**
   * The turn that packed chunks ended: sends what is still packed. Public
   * only for `nextTurn`; not meant to be called.
   */
  endTurn(): void {
    this.#turnEnd = false;
    this.#flush();
  }

  /** Sends the chunks packed so far: one alone, several as one frame. */
  #flush(): void {
    const chunks = this.#packed;
    if (chunks.length === 0 || this.#stopped) return;
    this.#packed = [];
    this.#packedBytes = 0;
    if (chunks.length === 1) this.#send(chunks[0]);
    else this.#send(chunks, chunks.length);
  }

  /** Sends a chunk pulled: packed when it may be, else after those packed. */
  #add(chunk: unknown): void {
    const pack = this.#pack;
    const size = pack > 0 ? bytesOf(chunk) : -1;
    if (size < 0 || size > pack >> 1) {
      this.#flush();
      return this.#send(chunk);
    }
    if (this.#packedBytes + size > pack) this.#flush();
    this.#packed.push(chunk);
    this.#packedBytes += size;
    // One wake-up a turn, however many frames the turn fills.
    if (!this.#turnEnd) {
      this.#turnEnd = true;
      nextTurn(sendPacked, this);
    }
  }

  /** Resolves `true` when the source ended, `false` when stopped. */
  async #run(): Promise<boolean> {
    try {
      while (!this.#stopped) {
        if (this.#credit <= 0) {
          this.#flush();
          await new Promise<void>((resolve) => this.#wake = resolve);
          continue;
        }
        const result = await this.#iterator.next();
        if (this.#stopped) break;
        if (result.done) {
          this.#flush();
          return this.#stopped = true;
        }
        this.#credit--;
        this.#sent++;
        this.#add(result.value);
      }
    } catch (error) {
      // What was pulled before the failure arrives before it.
      this.#flush();
      throw error;
    }
    return false;
  }
}

/**
 * Sends a request through `request` asking for a streamed result, and
 * returns the stream of its chunks. Internal: `stream()` of the peer and the
 * client.
 *
 * @param options Credit, signal and timeout.
 * @param request Sends the request with these options (the client may queue
 * it until connected).
 * @returns The chunks.
 */
export function consume<T>(
  options: StreamOptions,
  request: (options: StreamCall) => Promise<unknown>,
): AsyncIterableIterator<T> {
  const { credit = DEFAULT_CREDIT, signal, timeout = 0 } = options;
  const controller = new AbortController();
  const queue = new ChunkQueue<T>(credit, (reason) => controller.abort(reason));
  const onAbort = () => controller.abort(signal!.reason);
  const done = (error: unknown, last?: unknown): void => {
    signal?.removeEventListener("abort", onAbort);
    queue.end(error, last);
  };
  if (signal?.aborted) done(signal.reason);
  else {
    signal?.addEventListener("abort", onAbort, { once: true });
    request({
      signal: controller.signal,
      timeout,
      credit,
      queue: queue as ChunkQueue,
    })
      .then((last) => done(undefined, last), done);
  }
  return queue;
}

/**
 * Which end of a request's streams a frame type goes to: my result (0),
 * the result I produce (1), the params I receive (2), my params (3).
 */
const SIDE = [0, 1, 2, 2, 3, 3];

/**
 * The streams of one peer, by request sequence and side: the results it
 * reads and produces, the params it receives and uploads. Internal: the
 * peer creates it on first use.
 */
export class Streams {
  /** Queues (sides 0, 2) and pumps (sides 1, 3), by `sequence * 4 + side`. */
  #ends = new Map<number, ChunkQueue | ChunkPump>();
  /** Incoming requests that asked for a streamed result: their credit. */
  #accepted = new Map<number, number>();
  /** Streamed results being sent (they count as requests in flight). */
  producing = 0;
  #send: (frame: Frame) => void;
  #fail: (sequence: number, error: unknown) => void;
  /** Bytes an uploader that offers to may pack into one frame (0: none). */
  #pack: number;

  /**
   * @param send Sends a frame on the peer.
   * @param fail Answers request `sequence` with the error of its handler
   * (here: of its streamed result).
   * @param pack Bytes of chunks an uploader that offers to may pack into one
   * frame (a server's: well under its largest message); 0 lets none.
   */
  constructor(
    send: (frame: Frame) => void,
    fail: (sequence: number, error: unknown) => void,
    pack = 0,
  ) {
    this.#send = send;
    this.#fail = fail;
    this.#pack = pack;
  }

  /** Sends chunks of `source` on `sequence` as frames of `type`. */
  #pump(
    sequence: number,
    side: number,
    source: AsyncIterable<unknown>,
    credit: number,
    type: 12 | 14,
    finish: (error?: unknown) => void,
  ): ChunkPump {
    const key = sequence * 4 + side;
    const pump = new ChunkPump(
      source,
      credit,
      (message, chunks) =>
        this.#send(
          chunks === undefined
            ? { sequence, type, message }
            : { sequence, type, message, chunks },
        ),
      (error) => {
        this.#ends.delete(key);
        finish(error);
      },
    );
    this.#ends.set(key, pump);
    return pump;
  }

  /**
   * Sends my request `sequence` whose result is read as a stream or whose
   * params are a stream (then uploaded as the responder grants credit).
   *
   * @param sequence The request's sequence.
   * @param options Its method, and from `stream()` the credit and queue.
   * @param message The params.
   * @param response The request's response.
   */
  request(
    sequence: number,
    options: StreamCall,
    message: unknown,
    response: Promise<unknown>,
  ): void {
    const { method, credit, queue } = options;
    const send = this.#send;
    const upload = isStream(message) || undefined;
    send(
      upload
        ? { sequence, type: 1, method, credit, upload, pack: true }
        : { sequence, type: 1, message, method, credit },
    );
    const key = sequence * 4;
    const over = (): void => {
      if (this.#ends.get(key) === queue) this.#ends.delete(key);
      this.dispatch({ sequence, type: 17 });
    };
    response.then(over, over);
    if (queue) {
      this.#ends.set(key, queue);
      queue.bind((credit) => send({ sequence, type: 13, credit }));
    }
    if (upload) {
      this.#pump(
        sequence,
        3,
        message as AsyncIterable<unknown>,
        0,
        14,
        (error) =>
          send(
            error === undefined
              ? { sequence, type: 15 }
              : { sequence, type: 15, error: handlerError(error) },
          ),
      );
    }
  }

  /**
   * Takes note of an incoming request's stream fields: the credit of a
   * streamed result, and streamed params, which become the handler's params
   * (a stream) with the first credit granted.
   *
   * @param frame The request.
   */
  accept(frame: RequestFrame): void {
    const { sequence, credit } = frame;
    if (credit) this.#accepted.set(sequence, credit);
    if (!frame.upload) return;
    const key = sequence * 4 + 2;
    const send = this.#send;
    const queue = new ChunkQueue(DEFAULT_CREDIT, () => {
      if (this.#ends.delete(key)) send({ sequence, type: 17 });
    }, UPLOAD_BUDGET);
    queue.bind((credit) => send({ sequence, type: 16, credit }));
    this.#ends.set(key, queue);
    frame.message = queue;
    const pack = frame.pack && this.#pack;
    if (pack) queue.packs = true;
    send(
      pack
        ? { sequence, type: 16, credit: DEFAULT_CREDIT, pack }
        : { sequence, type: 16, credit: DEFAULT_CREDIT },
    );
  }

  /**
   * A handler finished: its streamed params are over, and a stream it
   * returned is sent (or refused, when the caller did not ask for one).
   *
   * @param sequence The request's sequence.
   * @param ok Whether the handler returned (rather than threw).
   * @param value What it returned or threw.
   * @param context Its context, whose signal aborts when the stream stops.
   * @returns `true` when the answer was taken care of here.
   */
  settle(
    sequence: number,
    ok: boolean,
    value: unknown,
    context: { abort(reason: unknown): void },
  ): boolean {
    const credit = this.#accepted.get(sequence);
    this.#accepted.delete(sequence);
    const stream = ok && isStream(value);
    const received = sequence * 4 + 2;
    // Streamed params stay readable while a streamed result is sent.
    if (!stream || !credit) this.#ends.delete(received);
    if (!stream) return false;
    if (!credit) {
      // Nobody to read it: say so, and let the source clean up.
      stop(iterate(value));
      this.#send({ sequence, type: 2, error: STREAM_NOT_REQUESTED });
      return true;
    }
    this.producing++;
    this.#pump(sequence, 1, value, credit, 12, (error) => {
      this.producing--;
      this.#ends.delete(received);
      if (error === undefined) this.#send({ sequence, type: 2 });
      else this.#fail(sequence, error);
    }).abort = (reason) => {
      this.producing--;
      context.abort(reason);
    };
    return true;
  }

  /**
   * Stops what incoming request `sequence` streams and receives: its caller
   * cancelled it (or the connection closed: `reason`).
   *
   * @param sequence The request's sequence.
   * @param reason What the handler's signal and stream see.
   */
  cancel(sequence: number, reason: unknown = cancelled()): void {
    this.#accepted.delete(sequence);
    for (const side of [1, 2]) {
      const key = sequence * 4 + side;
      const end = this.#ends.get(key);
      this.#ends.delete(key);
      if (end instanceof ChunkPump) end.stop(reason);
      else end?.end(reason);
    }
  }

  /**
   * Ends every stream: the connection closed.
   *
   * @param error What the readers and the handlers see.
   */
  closeAll(error: unknown): void {
    const ends = [...this.#ends.values()];
    this.#ends.clear();
    for (const end of ends) {
      if (end instanceof ChunkPump) end.stop(error);
      else end.end(error);
    }
  }

  /** `true` while a stream is open (a chunk or credit may be asked for). */
  get open(): boolean {
    return this.#ends.size > 0;
  }

  /**
   * Whether an incoming frame was asked for by this side: a chunk (types
   * 12, 14) within the credit granted, or a credit frame (13, 16) that
   * grants no more than the chunks sent. Such frames cannot amplify
   * anything, so the rate limits exempt them (the size limit still applies).
   *
   * @param frame The decoded frame.
   * @returns `true` when it was asked for.
   */
  asked(frame: Frame & { credit?: number; chunks?: number }): boolean {
    const type = frame.type;
    if (type < 12 || type === 15 || type === 17) return false;
    const end = this.#ends.get(frame.sequence * 4 + SIDE[type - 12]);
    if (end === undefined) return false;
    return type === 12 || type === 14
      ? end instanceof ChunkQueue && end.asked(frame.chunks)
      : end instanceof ChunkPump && end.asked(frame);
  }

  /**
   * Routes one stream frame (types 12 to 17); one that matches no stream is
   * dropped (it may be late after a cancel).
   *
   * @param frame The frame.
   */
  dispatch(
    frame: Frame & {
      credit?: number;
      pack?: number;
      chunks?: number;
      error?: ErrorPayload;
    },
  ): void {
    const { sequence, type } = frame;
    const key = sequence * 4 + SIDE[type - 12];
    const end = this.#ends.get(key);
    if (type === 15 || type === 17) this.#ends.delete(key);
    end?.take(frame);
  }
}
