/**
 * Sessions in a shared store, across instances: {@linkcode takeOver}
 * resumes here a session that another instance ran (loads it, reports the
 * requests and frames in doubt, replays what the client missed, rejoins its rooms),
 * and {@linkcode handOver} hands this instance's sessions over to the
 * others (a rolling restart).
 *
 * @module
 */

import type { Endpoint } from "../peer/peer.ts";
import type { SessionLimits } from "../peer/session_socket.ts";
import { encodeState, type SessionState } from "../wire/session_frames.ts";
import {
  JournalEntry,
  loadedFrame,
  type SessionJournal,
} from "./session_journal.ts";
import type { StoredSession } from "./session_store.ts";
import type { ServerSessions } from "./server_sessions.ts";
import type { SessionUpgrade } from "./session_host.ts";
import { delay, Session, within } from "./server_session.ts";

/** What the take-over and hand-over code uses of a server's sessions. */
export interface SharedSessions<
  Local extends Endpoint,
  Remote extends Endpoint,
> {
  sessions: ServerSessions<Local, Remote>;
  journal: SessionJournal;
  live: Map<string, Session<Local, Remote>>;
  limits: SessionLimits;
  /** Gives a session its peer and connection, and lists it. */
  open(session: Session<Local, Remote>, upgrade: SessionUpgrade): void;
  /** Ends a session here quietly: another instance runs it. */
  moved(session: Session<Local, Remote>): void;
}

/**
 * Resumes a session that another instance ran (or this one, before
 * another took it): loads it from the store, tells the client which of
 * its requests are in doubt, replays what the client missed.
 */
export function takeOver<Local extends Endpoint, Remote extends Endpoint>(
  shared: SharedSessions<Local, Remote>,
  found: { stored: StoredSession; owner: string },
  upgrade: SessionUpgrade,
  received: number,
): void {
  const { stored, owner } = found;
  const stale = shared.live.get(stored.record.id);
  const session = new Session<Local, Remote>(
    shared.sessions,
    stored.record.id,
    stored.record.user,
    stored.record.secretHash,
    shared.limits,
  );
  session.entry = new JournalEntry(owner, stored.version);
  // The client may hold requests the previous owner sent but did not
  // store: one sequence at most per frame past the stored ones.
  const used = stored.requested + Math.max(0, received - stored.sent);
  session.usedSequences = session.entry.requested = used;
  const socket = session.socket;
  session.load(
    stored.received,
    stored.sent,
    stored.frames.map(loadedFrame),
    received,
  );
  session.hold();
  shared.open(session, upgrade);
  const journal = shared.journal;
  journal.add(session, false);
  // Requests that ran (or may have) without a stored answer: in doubt.
  const inDoubt = stored.open;
  journal.settleOpen(session, inDoubt);
  const fresh = session.connection;
  const state: SessionState = {
    resumed: true,
    received: stored.received,
    replayed: session.missed(received),
    carriedAcks: upgrade.carrier && true,
  };
  if (inDoubt.length > 0) state.inDoubt = inDoubt;
  // Frames stored as received but not as handed over: they may or may not
  // have run. Not run here (nor sent again); the client reports them.
  const dispatched = Math.min(stored.dispatched ?? Infinity, stored.received);
  const framesInDoubt = stored.received - dispatched;
  if (framesInDoubt > 0) state.dispatched = dispatched;
  fresh.budgeted.send(encodeState(state));
  const replayed = socket.attach(
    fresh.budgeted,
    received,
    upgrade.carrier,
  );
  shared.sessions.metrics.resumed++;
  shared.sessions.metrics.replayed += replayed;
  shared.sessions.metrics.takenOver++;
  shared.sessions.metrics.inDoubt += inDoubt.length;
  shared.sessions.metrics.framesInDoubt += framesInDoubt;
  const host = shared.sessions.host;
  host.opened(fresh);
  for (const room of stored.rooms) {
    try {
      host.join(room, fresh.user);
    } catch (error) {
      shared.sessions.warn(
        `session room ${JSON.stringify(room)} not rejoined`,
        error,
      );
    }
  }
  if (stale !== undefined) shared.moved(stale);
  host.logger?.info(
    `take over user=${
      JSON.stringify(fresh.user)
    } id=${fresh.id} replayed=${replayed} inDoubt=${inDoubt.length} framesInDoubt=${framesInDoubt}`,
  );
  host.events.dispatchEvent(
    new CustomEvent("resume", { detail: { connection: fresh, replayed } }),
  );
}

/**
 * Hands every session over to the other instances (a rolling restart with
 * a shared store): marks them as handed over in the store (a resume
 * elsewhere waits), closes their connections with 1012 while keeping
 * them, lets running handlers finish (`drainHandlers`), stores what they
 * answered, releases the sessions, and waits until each is resumed
 * elsewhere (or `handoverTimeout`). Then they end here without any
 * `expire` event; their presence moved with them.
 */
export async function handOver<Local extends Endpoint, Remote extends Endpoint>(
  shared: SharedSessions<Local, Remote>,
  drainHandlers: () => Promise<void>,
  timeout: number,
): Promise<void> {
  const journal = shared.journal;
  const end = Date.now() + timeout;
  const drain = () => within(journal.drain(), end);
  const sessions = [...shared.live.values()];
  for (const session of sessions) journal.handover(session, true);
  await drain();
  for (const session of sessions) {
    clearTimeout(session.timer);
    session.socket.drop(1012, "Service restart");
    clearTimeout(session.timer);
  }
  // Every frame received so far is stored and handed to its handler.
  await drain();
  await drainHandlers();
  for (const session of sessions) journal.handover(session, false);
  await drain();
  shared.sessions.host.logger?.info(`handing over ${sessions.length} sessions`);
  // Each is given up here once claimed elsewhere (its write is fenced).
  while (shared.live.size > 0 && Date.now() < end) {
    for (const session of shared.live.values()) journal.touch(session);
    await drain();
    if (shared.live.size > 0) await delay(25);
  }
  for (const session of [...shared.live.values()]) shared.moved(session);
  journal.close();
  await shared.sessions.leaving();
}
