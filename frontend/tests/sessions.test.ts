import { describe, expect, it } from "vitest";
import type { Session } from "../src/api/types";
import { applySessionEvent, describeSession, formatDuration, sessionDurationMs, sessionStatus } from "../src/state/sessions";
import { terminalView } from "../src/state/terminalLine";
import { proc } from "./helpers";

const session = (id: string, processes = [proc("p1", "2026-01-01T00:00:00Z", "running")]): Session => ({
  id,
  executor: "demo",
  working_dir: null,
  created_at: "2026-01-01T00:00:00Z",
  processes: processes.map((p) => ({ ...p, session_id: id })),
});

describe("session events", () => {
  it("puts a new session on top, once", () => {
    const first = applySessionEvent([session("a")], { type: "session_created", session: session("b") });
    expect(first.sessions.map((s) => s.id)).toEqual(["b", "a"]);
    const again = applySessionEvent(first.sessions, { type: "session_created", session: session("b") });
    expect(again.sessions).toHaveLength(2);
  });

  it("lands a process update in its session, and asks to refetch for an unknown one", () => {
    const ended = { ...proc("p1", "2026-01-01T00:00:00Z", "completed"), session_id: "a" };
    const update = applySessionEvent([session("a")], { type: "process_updated", process: ended });
    expect(sessionStatus(update.sessions[0] as Session)).toBe("completed");
    expect(update.refetch).toBe(false);
    const stray = applySessionEvent([session("a")], { type: "process_updated", process: { ...ended, session_id: "z" } });
    expect(stray.refetch).toBe(true);
    expect(applySessionEvent([], { type: "resync" }).refetch).toBe(true);
  });

  it("replaces a session on session_updated", () => {
    const ended = { ...session("a"), active: false };
    const update = applySessionEvent([session("b"), session("a")], { type: "session_updated", session: ended });
    expect(update.sessions.map((s) => [s.id, s.active])).toEqual([["b", undefined], ["a", false]]);
  });

  it("describes a session by its agent prompt, else its command", () => {
    const agent = session("a", [{ ...proc("p1", "2026-01-01T00:00:00Z"), prompt: "Fix it" }]);
    expect(describeSession(agent)).toBe("Fix it");
    const script = session("b", [{ ...proc("p1", "2026-01-01T00:00:00Z"), run_reason: "script", command: ["ls", "-l"] }]);
    expect(describeSession(script)).toBe("ls -l");
    expect(describeSession(session("c12345678", []))).toBe("Session c1234567");
  });

  it("measures a session from its first start to its last end", () => {
    const done = session("a", [
      { ...proc("p1", "2026-01-01T00:00:00Z"), completed_at: "2026-01-01T00:00:30Z" },
      { ...proc("p2", "2026-01-01T00:00:30Z"), completed_at: "2026-01-01T00:01:35Z" },
    ]);
    expect(formatDuration(sessionDurationMs(done, Date.now()))).toBe("1m 35s");
  });
});

describe("terminalView", () => {
  it("shows the last state of a carriage-return progress line", () => {
    expect(terminalView("10%\r50%\r100% done")).toBe("100% done");
    expect(terminalView("downloading 100%\rok")).toBe("okwnloading 100%");
    expect(terminalView("plain")).toBe("plain");
  });
});
