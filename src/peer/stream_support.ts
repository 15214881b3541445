/**
 * {@linkcode streams}: stream support as an object a peer or a client is
 * given (the `streams` option), so that an app that never streams does not
 * ship `streams.ts` and `chunk_queue.ts` (its bundler leaves them out). The
 * server always gives it to its peers. {@linkcode StreamSupport} and
 * {@linkcode PeerStreams} are the shapes the peer relies on.
 *
 * @module
 */

import type { ErrorPayload, Frame, RequestFrame } from "../wire/protocol.ts";
import type { RequestOptions } from "./peer_options.ts";
import { consume, type StreamOptions, Streams } from "./streams.ts";

/**
 * The stream ends of one peer, by request sequence: what the peer hands
 * stream frames, stream requests and streamed results to. Created by
 * {@linkcode StreamSupport.ends}; not called by applications.
 *
 * @example Usage
 * ```ts
 * import { streams } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const ends = streams.ends(() => {}, () => {});
 * assert.equal(ends.open, false);
 * ```
 */
export interface PeerStreams {
  /** Streamed results being sent (they count as requests in flight). */
  readonly producing: number;
  /** `true` while a stream is open (a chunk or credit may be asked for). */
  readonly open: boolean;
  /**
   * Sends request `sequence` whose result is read as a stream or whose
   * params are a stream.
   *
   * @param sequence The request's sequence.
   * @param options Its method, and from `stream()` the credit and queue.
   * @param message The params.
   * @param response The request's response.
   */
  request(
    sequence: number,
    options: RequestOptions & { method?: string },
    message: unknown,
    response: Promise<unknown>,
  ): void;
  /**
   * Takes note of an incoming request's stream fields (credit, upload).
   *
   * @param frame The request.
   */
  accept(frame: RequestFrame): void;
  /**
   * A handler finished; a stream it returned is sent from here.
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
  ): boolean;
  /**
   * Stops what incoming request `sequence` streams and receives.
   *
   * @param sequence The request's sequence.
   */
  cancel(sequence: number): void;
  /**
   * Ends every stream: the connection closed.
   *
   * @param error What the readers and the producers see.
   */
  closeAll(error: unknown): void;
  /**
   * Whether an incoming frame was asked for by this side (exempt from the
   * rate limits).
   *
   * @param frame The decoded frame.
   * @returns `true` when it was asked for.
   */
  asked(frame: Frame): boolean;
  /**
   * Routes one stream frame (types 12 to 17).
   *
   * @param frame The frame.
   */
  dispatch(frame: Frame & { credit?: number; error?: ErrorPayload }): void;
}

/**
 * Stream support, given to a peer or a client as its `streams` option:
 * {@linkcode streams} is the one implementation.
 *
 * @example Usage
 * ```ts
 * import { streams, type StreamSupport } from "@duplex/ws";
 *
 * const support: StreamSupport = streams;
 * ```
 */
export interface StreamSupport {
  /**
   * Creates the stream ends of one peer.
   *
   * @param send Sends a frame on the peer.
   * @param fail Answers request `sequence` with the error of its handler.
   * @returns The peer's stream ends.
   */
  ends(
    send: (frame: Frame) => void,
    fail: (sequence: number, error: unknown) => void,
  ): PeerStreams;
  /**
   * Sends a request through `request` asking for a streamed result, and
   * returns its chunks (what `stream()` does).
   *
   * @typeParam T The chunk type.
   * @param options Credit, signal and timeout.
   * @param request Sends the request with these options.
   * @returns The chunks.
   */
  consume<T>(
    options: StreamOptions,
    request: (options: RequestOptions & { credit?: number }) => Promise<
      unknown
    >,
  ): AsyncIterableIterator<T>;
}

/**
 * Stream support: pass it as the `streams` option of a `Client` (or a
 * `Peer`) to call `stream()`, to upload a stream as params, to return a
 * stream from a handler, or to be sent one. Without it a client refuses
 * these with a `STREAMS_UNSUPPORTED` {@linkcode DuplexError} naming this
 * option, and its bundle is about 1.5 KB (gzip) smaller. The server's peers
 * always have it.
 *
 * @example Reading a streamed result
 * ```ts
 * import { Client, streams } from "@duplex/ws/client";
 * import { DuplexServer } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const server = new DuplexServer();
 * server.handle("count", async function* (to: number) {
 *   for (let i = 1; i <= to; i++) yield i;
 * });
 * await using http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, server.fetch);
 * const client = new Client(`ws://127.0.0.1:${http.addr.port}/?user=a`, { streams });
 * await client.connect();
 * const got: number[] = [];
 * for await (const n of client.stream<number>("count", 3)) got.push(n);
 * assert.deepEqual(got, [1, 2, 3]);
 * await client.close();
 * await server.shutdown();
 * ```
 */
export const streams: StreamSupport = {
  ends: (send, fail) => new Streams(send, fail),
  consume,
};
