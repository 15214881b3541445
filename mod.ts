/**
 * Duplex turns a WebSocket into a full-duplex request / response / notify
 * channel: `await peer.request("hello")` resolves with the reply that belongs
 * to that request, with thousands in flight in both directions, while either
 * side pushes notifications at any time.
 *
 * This module holds what both sides share and runs anywhere (browsers, Deno,
 * Deno Deploy): the wire protocol and its codec, the typed errors, the
 * {@linkcode RequestTracker} and the {@linkcode Peer}. The reconnecting
 * client is in `@duplex/ws/client`, the server in `@duplex/ws/server`.
 *
 * @example Track a request by hand
 * ```ts
 * import { jsonCodec, RequestTracker } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * using tracker = new RequestTracker({ timeout: 5_000 });
 * const { sequence, promise } = tracker.track<string>();
 * const wire = jsonCodec.encode({ sequence, type: 1, message: "hello" });
 * assert.equal(wire, `{"sequence":${sequence},"type":1,"message":"hello"}`);
 * // The response arrives:
 * const frame = jsonCodec.decode(`{"sequence":${sequence},"type":2,"message":"ok"}`);
 * if (frame.type === 2) tracker.resolve(frame.sequence, frame.message);
 * assert.equal(await promise, "ok");
 * ```
 *
 * @module
 */

export {
  type CancelFrame,
  type ClosingFrame,
  ErrorCode,
  type ErrorPayload,
  type Frame,
  FrameType,
  MAX_SEQUENCE,
  type NotifyFrame,
  type PingFrame,
  type PongFrame,
  type RequestFrame,
  type ResponseFrame,
  SUBPROTOCOL,
} from "./src/wire/protocol.ts";
export {
  type AckCarrier,
  type Codec,
  jsonCodec,
  validateFrame,
} from "./src/wire/codec.ts";
export type {
  StreamChunkFrame,
  StreamCreditFrame,
  StreamFrame,
  UploadCancelFrame,
  UploadChunkFrame,
  UploadCreditFrame,
  UploadEndFrame,
} from "./src/wire/stream_frames.ts";
export { type ChunkOf, type StreamOptions } from "./src/peer/streams.ts";
export {
  type PeerStreams,
  streams,
  type StreamSupport,
} from "./src/peer/stream_support.ts";
export {
  SESSION_PROTOCOL,
  SessionFrameType,
  type SessionHello,
  type SessionLossReason,
  type SessionState,
} from "./src/wire/session_frames.ts";
export { OutcomeUnknownError } from "./src/wire/outcome_unknown_error.ts";
export {
  CloseCode,
  isFinalCloseCode,
  reportedCloseCode,
} from "./src/wire/close_codes.ts";
export {
  ConnectError,
  ConnectionClosedError,
  DuplexError,
  OriginalProtocolError,
  ProtocolError,
  QueueFullError,
  QueueTimeoutError,
  RemoteError,
  RequestTimeoutError,
  TooManyPendingError,
} from "./src/wire/errors.ts";
export {
  RequestTracker,
  type RequestTrackerOptions,
  type TrackerStats,
  type UnexpectedResponse,
} from "./src/peer/request_tracker.ts";
export {
  type PendingRequest,
  type TimedRequest,
  type Timeouts,
  type TimeoutsFactory,
  type TrackOptions,
} from "./src/peer/pending_requests.ts";
export { timeoutLists } from "./src/peer/timeout_lists.ts";
export { RateLimiter, type RateLimitOptions } from "./src/peer/rate_limiter.ts";
export {
  type BackpressurePolicy,
  PeerLimits,
  type PeerLimitsOptions,
} from "./src/peer/limits.ts";
export {
  type AnyEndpoint,
  type Endpoint,
  type NotificationMethod,
  type ParamsOf,
  type PayloadOf,
  type RequestMethod,
  type ResultOf,
} from "./src/peer/endpoint.ts";
export {
  type NotificationListener,
  type RequestContext,
  type RequestHandler,
} from "./src/peer/handler.ts";
export { type PeerGuard } from "./src/peer/peer_guard.ts";
export {
  type PeerEventMap,
  type PeerOptions,
  type PeerStats,
  type RequestOptions,
} from "./src/peer/peer_options.ts";
export { type SocketLike } from "./src/peer/socket_like.ts";
export {
  isPresenceMeta,
  MAX_PRESENCE_META_SIZE,
  type PresenceDiff,
  type PresenceMeta,
  type PresenceState,
} from "./src/wire/presence_frames.ts";
export { Peer } from "./src/peer/peer.ts";
export { Receiver, Registry } from "./src/peer/receiver.ts";
export { Sender } from "./src/peer/sender.ts";
export { TypedEventTarget } from "./src/peer/typed_event_target.ts";
export {
  type InferInput,
  type InferOutput,
  type StandardIssue,
  type StandardResult,
  type StandardSchema,
} from "./src/peer/standard_schema.ts";
export {
  type Contract,
  type ContractEndpoint,
  type ContractHandlerParams,
  type ContractHandlerResult,
  type ContractHandlers,
  type ContractListeners,
  type ContractNotifications,
  type ContractParams,
  type ContractRequests,
  type ContractResult,
  defineContract,
  implement,
  listen,
  type MethodSchemas,
  type RegistryHolder,
} from "./src/peer/contract.ts";
export {
  bind,
  type BoundContract,
  type ContractSender,
} from "./src/peer/contract_caller.ts";
export {
  validate,
  ValidationError,
  type ValidationIssue,
} from "./src/peer/validation.ts";
export {
  ForbiddenError,
  type Middleware,
  type MiddlewareContext,
} from "./src/peer/middleware.ts";
export type {
  AnyResult,
  MethodWithoutParams,
  NotificationWithoutPayload,
  TypedNotifyFrame,
} from "./src/peer/endpoint.ts";
