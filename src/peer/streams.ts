/**
 * Streams over a {@linkcode Peer}: the consumer side ({@linkcode ChunkQueue},
 * an async iterator that grants credit as it is read), the producer side
 * ({@linkcode ChunkPump}, which pulls from an async iterable only while
 * credit lasts), {@linkcode consume} (a request whose result is read as a
 * stream), and {@linkcode Streams}, which routes a peer's stream frames
 * (types 12 to 17). See PROTOCOL.md, "Streams", and docs/streams.md.
 *
 * @module
 */

import { DuplexError, RemoteError } from "../wire/errors.ts";
import type { ErrorPayload, Frame, RequestFrame } from "../wire/protocol.ts";
import { handlerError } from "./incoming_requests.ts";
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

const STREAM_NOT_REQUESTED: ErrorPayload = {
  code: "STREAM_NOT_REQUESTED",
  message: "Cannot answer request: the result is a stream (call stream())",
};

/** Whether a value is a stream: an async iterable or a ReadableStream. */
export function isStream(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === "object" && value !== null &&
    (Symbol.asyncIterator in value || "getReader" in value);
}

function cancelled(): DuplexError {
  return new DuplexError("CANCELLED", "Stream cancelled");
}

/**
 * The receiving end of one stream: buffers what arrives (never more than
 * granted), hands it to `for await`, and grants credit back as it is read,
 * in batches of half the window.
 */
export class ChunkQueue<T = unknown> implements AsyncIterableIterator<T> {
  #chunks: unknown[] = [];
  #waiting: PromiseWithResolvers<IteratorResult<T>> | undefined;
  #done = false;
  #error: unknown;
  #window: number;
  /** Granted and not arrived yet. */
  #credit: number;
  /** Read since the last grant. */
  #owed = 0;
  #grant: (credit: number) => void = () => {};
  #stop: (reason: unknown) => void;

  /**
   * @param window The chunks granted at first, and at most outstanding.
   * @param stop Tells the producer to stop (the consumer left early).
   */
  constructor(window: number, stop: (reason: unknown) => void) {
    this.#window = this.#credit = window;
    this.#stop = stop;
  }

  /** Sets how credit is granted, once the stream has a sequence. */
  bind(grant: (credit: number) => void): void {
    this.#grant = grant;
  }

  /** A chunk arrived; one beyond the credit fails the stream. */
  push(chunk: unknown): void {
    if (this.#done) return;
    if (--this.#credit < 0) {
      const error = new DuplexError(
        "INVALID_FRAME",
        "Cannot read stream: more chunks than granted",
      );
      this.#stop(error);
      this.end(error);
    } else if (this.#waiting) this.#settle({ done: false, value: chunk as T });
    else this.#chunks.push(chunk);
  }

  /**
   * Ends the stream, with an error or not, after a `last` chunk unless it is
   * `undefined` (a plain result). Idempotent.
   */
  end(error?: unknown, last?: unknown): void {
    if (this.#done) return;
    this.#done = true;
    if (error !== undefined) {
      const waiting = this.#waiting;
      this.#waiting = undefined;
      if (waiting) waiting.reject(error);
      else this.#error = error;
    } else if (last !== undefined && !this.#waiting) this.#chunks.push(last);
    else {
      this.#settle(
        last === undefined
          ? { done: true, value: undefined }
          : { done: false, value: last as T },
      );
    }
  }

  /** The next chunk, once it arrived. */
  next(): Promise<IteratorResult<T>> {
    const chunks = this.#chunks;
    if (chunks.length) {
      this.#read();
      return Promise.resolve({ done: false, value: chunks.shift() as T });
    }
    if (this.#done) {
      const error = this.#error;
      this.#error = undefined;
      return error === undefined
        ? Promise.resolve({ done: true, value: undefined })
        : Promise.reject(error);
    }
    return (this.#waiting = Promise.withResolvers()).promise;
  }

  /** Leaves early: the producer is stopped, buffered chunks dropped. */
  return(): Promise<IteratorResult<T>> {
    if (!this.#done) this.#stop(cancelled());
    this.#chunks = [];
    this.end();
    this.#error = undefined;
    return Promise.resolve({ done: true, value: undefined });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  #settle(result: IteratorResult<T>): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    if (!result.done) this.#read();
    waiting?.resolve(result);
  }

  #read(): void {
    if (!this.#done && ++this.#owed * 2 >= this.#window) {
      this.#credit += this.#owed;
      this.#grant(this.#owed);
      this.#owed = 0;
    }
  }
}

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

/**
 * The sending end of one stream: pulls a chunk from its source only when
 * the consumer has credit for it, so a slow consumer slows the source and
 * nothing piles up.
 */
export class ChunkPump {
  #iterator: AsyncIterator<unknown>;
  #credit: number;
  #wake: (() => void) | undefined;
  #stopped = false;

  /**
   * Starts pumping.
   *
   * @param source The async iterable or ReadableStream.
   * @param credit The credit granted at first.
   * @param send Sends one chunk.
   * @param finish Called once when the source ended (no argument) or
   * failed; not after {@linkcode ChunkPump.stop}.
   */
  constructor(
    source: AsyncIterable<unknown>,
    credit: number,
    send: (chunk: unknown) => void,
    finish: (error?: unknown) => void,
  ) {
    this.#credit = credit;
    this.#iterator = iterate(source);
    this.#run(send).then(
      (ended) => ended && finish(),
      (error) => this.#stopped || finish(error ?? new Error("Stream failed")),
    );
  }

  /** Adds credit. */
  grant(credit: number): void {
    this.#credit += credit;
    this.#wake?.();
  }

  /** Stops the source; nothing more is sent. Idempotent. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#wake?.();
    stop(this.#iterator);
  }

  /** Resolves `true` when the source ended, `false` when stopped. */
  async #run(send: (chunk: unknown) => void): Promise<boolean> {
    while (!this.#stopped) {
      if (this.#credit <= 0) {
        await new Promise<void>((resolve) => this.#wake = resolve);
        continue;
      }
      const result = await this.#iterator.next();
      if (this.#stopped) break;
      if (result.done) return this.#stopped = true;
      this.#credit--;
      send(result.value);
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
 * The streams of one peer, by request sequence: the results it reads and
 * produces, the params it uploads and receives. Internal: the peer creates
 * it on first use.
 */
export class Streams {
  /** Incoming requests' streamed results, and their handlers' abort. */
  #producers = new Map<number, [ChunkPump, (reason: unknown) => void]>();
  /** My requests' streamed results. */
  #results = new Map<number, ChunkQueue>();
  /** My requests' streamed params. */
  #uploads = new Map<number, ChunkPump>();
  /** Incoming requests' streamed params. */
  #received = new Map<number, ChunkQueue>();
  /** Incoming requests that asked for a streamed result: their credit. */
  #accepted = new Map<number, number>();
  #send: (frame: Frame) => void;
  #fail: (sequence: number, error: unknown) => void;

  /**
   * @param send Sends a frame on the peer.
   * @param fail Answers request `sequence` with the error of its handler
   * (here: of its streamed result).
   */
  constructor(
    send: (frame: Frame) => void,
    fail: (sequence: number, error: unknown) => void,
  ) {
    this.#send = send;
    this.#fail = fail;
  }

  /** Streamed results being sent (they count as requests in flight). */
  get producing(): number {
    return this.#producers.size;
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
        ? { sequence, type: 1, method, credit, upload }
        : { sequence, type: 1, message, method, credit },
    );
    const over = (): void => {
      if (this.#results.get(sequence) === queue) this.#results.delete(sequence);
      this.dispatch({ sequence, type: 17 });
    };
    response.then(over, over);
    if (queue) {
      this.#results.set(sequence, queue);
      queue.bind((credit) => send({ sequence, type: 13, credit }));
    }
    if (upload) {
      this.#uploads.set(
        sequence,
        new ChunkPump(
          message as AsyncIterable<unknown>,
          0,
          (message) => send({ sequence, type: 14, message }),
          (error) => {
            this.#uploads.delete(sequence);
            send(
              error === undefined
                ? { sequence, type: 15 }
                : { sequence, type: 15, error: handlerError(error) },
            );
          },
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
    const send = this.#send;
    const queue = new ChunkQueue(DEFAULT_CREDIT, () => {
      if (this.#received.delete(sequence)) send({ sequence, type: 17 });
    });
    queue.bind((credit) => send({ sequence, type: 16, credit }));
    this.#received.set(sequence, frame.message = queue);
    send({ sequence, type: 16, credit: DEFAULT_CREDIT });
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
    // Streamed params stay readable while a streamed result is sent.
    if (!stream || !credit) this.#received.delete(sequence);
    if (!stream) return false;
    if (!credit) {
      // Nobody to read it: say so, and let the source clean up.
      stop(iterate(value));
      this.#send({ sequence, type: 2, error: STREAM_NOT_REQUESTED });
      return true;
    }
    const send = this.#send;
    const pump = new ChunkPump(
      value,
      credit,
      (message) => send({ sequence, type: 12, message }),
      (error) => {
        this.#producers.delete(sequence);
        this.#received.delete(sequence);
        if (error === undefined) send({ sequence, type: 2 });
        else this.#fail(sequence, error);
      },
    );
    this.#producers.set(sequence, [pump, (reason) => context.abort(reason)]);
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
    const producer = this.#producers.get(sequence);
    this.#producers.delete(sequence);
    producer?.[1](reason);
    producer?.[0].stop();
    this.#received.get(sequence)?.end(reason);
    this.#received.delete(sequence);
  }

  /**
   * Ends every stream: the connection closed.
   *
   * @param error What the consumers see.
   */
  closeAll(error: unknown): void {
    for (const sequence of this.#producers.keys()) this.cancel(sequence, error);
    for (const queue of this.#received.values()) queue.end(error);
    for (const queue of this.#results.values()) queue.end(error);
    for (const pump of this.#uploads.values()) pump.stop();
  }

  /**
   * Routes one stream frame (types 12 to 17); one that matches no stream is
   * dropped (it may be late after a cancel).
   *
   * @param frame The frame.
   */
  dispatch(frame: Frame & { credit?: number; error?: ErrorPayload }): void {
    const { sequence, type } = frame;
    if (type === 12) this.#results.get(sequence)?.push(frame.message);
    else if (type === 13) {
      this.#producers.get(sequence)?.[0].grant(frame.credit!);
    } else if (type === 14) this.#received.get(sequence)?.push(frame.message);
    else if (type === 16) this.#uploads.get(sequence)?.grant(frame.credit!);
    else if (type === 15) {
      this.#received.get(sequence)?.end(
        frame.error && new RemoteError(frame.error),
      );
      this.#received.delete(sequence);
    } else {
      this.#uploads.get(sequence)?.stop();
      this.#uploads.delete(sequence);
    }
  }
}
