/**
 * The session figures of a {@linkcode DuplexServer}, and their lines in
 * the Prometheus text format.
 *
 * @module
 */

/**
 * Session counters since the start, and the gauges at render time.
 *
 * @example Usage
 * ```ts
 * import { SessionMetrics } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const metrics = new SessionMetrics();
 * metrics.resumed++;
 * assert.match(metrics.render(3, 1), /^duplex_sessions_resumed_total 1$/m);
 * ```
 */
export class SessionMetrics {
  /** Sessions started. */
  started = 0;
  /** Sessions resumed. */
  resumed = 0;
  /** Sessions that expired (grace period over). */
  expired = 0;
  /** Sessions whose buffer overflowed. */
  overflows = 0;
  /** Frames replayed on resumes. */
  replayed = 0;
  /** Shared store: sessions resumed here that another instance ran. */
  takenOver = 0;
  /** Shared store: requests reported in doubt on those resumes. */
  inDoubt = 0;
  /**
   * Shared store: client frames reported in doubt on those resumes (stored
   * as received, not as handed to a handler or listener).
   */
  framesInDoubt = 0;
  /** Shared store: sessions that went on on another instance. */
  movedAway = 0;
  /** Resumes refused, by reason. */
  readonly notResumed: Record<string, number> = {};

  /**
   * Counts a resume refused.
   *
   * @param reason Why it was refused.
   */
  refused(reason: string): void {
    this.notResumed[reason] = (this.notResumed[reason] ?? 0) + 1;
  }

  /**
   * Renders the figures.
   *
   * @param open Sessions open now (connected or within their grace period).
   * @param detached Of which waiting for their client.
   * @returns Prometheus text lines, each ending in a newline.
   */
  render(open: number, detached: number): string {
    const lines = [
      "# HELP duplex_sessions Sessions open (connected or within their grace period).",
      "# TYPE duplex_sessions gauge",
      `duplex_sessions ${open}`,
      "# HELP duplex_sessions_detached Sessions waiting for their client to resume.",
      "# TYPE duplex_sessions_detached gauge",
      `duplex_sessions_detached ${detached}`,
      "# HELP duplex_sessions_started_total Sessions started.",
      "# TYPE duplex_sessions_started_total counter",
      `duplex_sessions_started_total ${this.started}`,
      "# HELP duplex_sessions_resumed_total Sessions resumed on a new connection.",
      "# TYPE duplex_sessions_resumed_total counter",
      `duplex_sessions_resumed_total ${this.resumed}`,
      "# HELP duplex_sessions_expired_total Sessions whose grace period ended.",
      "# TYPE duplex_sessions_expired_total counter",
      `duplex_sessions_expired_total ${this.expired}`,
      "# HELP duplex_session_overflows_total Session buffers that went over a limit.",
      "# TYPE duplex_session_overflows_total counter",
      `duplex_session_overflows_total ${this.overflows}`,
      "# HELP duplex_session_frames_replayed_total Frames sent again on resumes.",
      "# TYPE duplex_session_frames_replayed_total counter",
      `duplex_session_frames_replayed_total ${this.replayed}`,
      "# HELP duplex_sessions_taken_over_total Sessions resumed from the shared store.",
      "# TYPE duplex_sessions_taken_over_total counter",
      `duplex_sessions_taken_over_total ${this.takenOver}`,
      "# HELP duplex_session_requests_in_doubt_total Requests reported in doubt on a take-over.",
      "# TYPE duplex_session_requests_in_doubt_total counter",
      `duplex_session_requests_in_doubt_total ${this.inDoubt}`,
      "# HELP duplex_session_frames_in_doubt_total Client frames reported in doubt on a take-over.",
      "# TYPE duplex_session_frames_in_doubt_total counter",
      `duplex_session_frames_in_doubt_total ${this.framesInDoubt}`,
      "# HELP duplex_sessions_moved_away_total Sessions that went on on another instance.",
      "# TYPE duplex_sessions_moved_away_total counter",
      `duplex_sessions_moved_away_total ${this.movedAway}`,
      "# HELP duplex_sessions_not_resumed_total Resumes refused, by reason.",
      "# TYPE duplex_sessions_not_resumed_total counter",
    ];
    for (const [reason, count] of Object.entries(this.notResumed)) {
      lines.push(
        `duplex_sessions_not_resumed_total{reason="${reason}"} ${count}`,
      );
    }
    return lines.join("\n") + "\n";
  }
}
