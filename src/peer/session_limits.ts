/**
 * {@linkcode SessionLimits}: the limits and acknowledgement pacing of a
 * session's transport (`SessionSocket`), and their defaults.
 *
 * @module
 */

/**
 * The limits and acknowledgement pacing of a `SessionSocket`, all
 * resolved (see {@linkcode sessionLimits}); one object is shared by every
 * session of a server.
 */
export interface SessionLimits {
  /** The most unacknowledged frames kept for a replay. */
  maxFrames: number;
  /** The most unacknowledged bytes kept. */
  maxBytes: number;
  /** The oldest an unacknowledged frame may get, in ms. */
  maxAge: number;
  /** Acknowledge after this many frames. */
  ackEvery: number;
  /**
   * Acknowledge after this many bytes (binary bytes, or UTF-16 units of
   * text), so that large frames are acknowledged long before the other
   * side's byte bound.
   */
  ackBytes: number;
  /** Acknowledge at most this long after a frame arrived, in ms. */
  ackDelay: number;
}

/**
 * Fills in the defaults: 10,000 frames, 8 MiB, 120 s, an acknowledgement
 * every 64 frames, 1 MiB or 1 s, whichever comes first.
 *
 * @param options The limits given.
 * @returns Every limit.
 * @throws {RangeError} When a limit is not a positive number.
 */
export function sessionLimits(options: Partial<SessionLimits>): SessionLimits {
  const limits: SessionLimits = {
    maxFrames: options.maxFrames ?? 10_000,
    maxBytes: options.maxBytes ?? 8 * 1024 * 1024,
    maxAge: options.maxAge ?? 120_000,
    ackEvery: options.ackEvery ?? 64,
    ackBytes: options.ackBytes ?? 1024 * 1024,
    ackDelay: options.ackDelay ?? 1_000,
  };
  for (const name in limits) {
    if (!(limits[name as keyof SessionLimits] > 0)) {
      throw new RangeError(
        `Cannot configure sessions: ${name} must be a positive number`,
      );
    }
  }
  return limits;
}

/**
 * `limits` with the acknowledgement pacing the other side asked for (its
 * hello's or state's `ackEvery` and `ackBytes`), except where this side's
 * options set it.
 *
 * @param limits This side's limits.
 * @param asked The other side's hello or state.
 * @param given This side's options.
 * @returns A copy of `limits` to acknowledge by.
 */
export function pacedBy(
  limits: SessionLimits,
  asked: { ackEvery?: number; ackBytes?: number },
  given: { ackEvery?: number; ackBytes?: number },
): SessionLimits {
  return {
    ...limits,
    ackEvery: given.ackEvery ?? asked.ackEvery ?? limits.ackEvery,
    ackBytes: given.ackBytes ?? asked.ackBytes ?? limits.ackBytes,
  };
}
