// The sessions list, kept current by session events: new sessions go on top, a process update
// lands in its session; `resync` (events were missed) asks the owner to refetch.
import type { Process, Session, SessionEvent } from "../api/types";

export type SessionsUpdate = { sessions: Session[]; refetch: boolean };

export function applySessionEvent(sessions: readonly Session[], event: SessionEvent): SessionsUpdate {
  switch (event.type) {
    case "session_created":
      if (sessions.some((s) => s.id === event.session.id)) return { sessions: [...sessions], refetch: false };
      return { sessions: [event.session, ...sessions], refetch: false };
    case "session_updated": {
      const position = sessions.findIndex((s) => s.id === event.session.id);
      if (position === -1) return { sessions: [event.session, ...sessions], refetch: false };
      const next = [...sessions];
      next[position] = event.session;
      return { sessions: next, refetch: false };
    }
    case "process_updated": {
      const position = sessions.findIndex((s) => s.id === event.process.session_id);
      // A process of a session this list has not seen: the list is stale.
      if (position === -1) return { sessions: [...sessions], refetch: true };
      const next = [...sessions];
      next[position] = withProcess(sessions[position] as Session, event.process);
      return { sessions: next, refetch: false };
    }
    case "resync":
      return { sessions: [...sessions], refetch: true };
    default:
      return { sessions: [...sessions], refetch: false };
  }
}

export function withProcess(session: Session, process: Process): Session {
  const known = session.processes.some((p) => p.id === process.id);
  const processes = known
    ? session.processes.map((p) => (p.id === process.id ? process : p))
    : [...session.processes, process];
  return { ...session, processes };
}

/** The session's overall status: its newest process's. */
export function sessionStatus(session: Session): Process["status"] | "empty" {
  const newest = newestProcess(session);
  return newest ? newest.status : "empty";
}

export function newestProcess(session: Session): Process | undefined {
  let newest: Process | undefined;
  for (const p of session.processes) {
    if (!newest || (p.started_at ?? "") >= (newest.started_at ?? "")) newest = p;
  }
  return newest;
}

/** From the first process's start to the last one's end (or `now` while running), in ms. */
export function sessionDurationMs(session: Session, now: number): number | null {
  const starts = session.processes.map((p) => p.started_at).filter((t): t is string => t !== null);
  if (starts.length === 0) return null;
  const start = Math.min(...starts.map((t) => Date.parse(t)));
  const running = session.processes.some((p) => p.status === "running");
  const ends = session.processes.map((p) => p.completed_at).filter((t): t is string => t !== null);
  const end = running || ends.length === 0 ? now : Math.max(...ends.map((t) => Date.parse(t)));
  return Math.max(0, end - start);
}

export function formatDuration(ms: number | null): string {
  if (ms === null) return "—";
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${seconds % 60}s`;
  return `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
}

/** What the session was asked to do: its first agent prompt, else its first command. */
export function describeSession(session: Session): string {
  const ordered = [...session.processes].sort((a, b) => (a.started_at ?? "").localeCompare(b.started_at ?? ""));
  const agent = ordered.find((p) => p.run_reason === "codingagent" && p.prompt);
  if (agent?.prompt) return agent.prompt;
  const command = ordered.find((p) => p.run_reason === "script" && p.command?.length) ?? ordered.find((p) => p.command?.length);
  if (command?.command) return command.command.join(" ");
  return `Session ${session.id.slice(0, 8)}`;
}
