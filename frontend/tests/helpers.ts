// Builders for pages and frames in the CONTRACT.md shapes.
import type { HistoryPage, NormalizedPayload, Process, RawPayload, StreamFrame } from "../src/api/types";

export function raw(index: number, content = `line ${index}`, type: RawPayload["type"] = "STDOUT") {
  return { entry_index: index, entry: { type, content } satisfies RawPayload };
}

export function message(index: number, text = `message ${index}`) {
  const entry: NormalizedPayload = {
    type: "NORMALIZED_ENTRY",
    content: { timestamp: null, entry_type: { type: "assistant_message" }, content: text },
  };
  return { entry_index: index, entry };
}

/** The server's page over indexes [from, to] of a log whose oldest index is `oldest`. */
export function page<P>(
  make: (index: number) => { entry_index: number; entry: P },
  from: number,
  to: number,
  oldest = 0,
  truncated = false,
): HistoryPage<P> {
  const entries = [];
  for (let i = from; i <= to; i++) entries.push(make(i));
  const hasMore = from > oldest;
  return { entries, has_more: hasMore, next_cursor: hasMore ? from : null, history_truncated: truncated };
}

export function appends<P>(make: (index: number) => { entry_index: number; entry: P }, from: number, to: number) {
  const frames: StreamFrame<P>[] = [];
  for (let i = from; i <= to; i++) frames.push({ type: "append", ...make(i) });
  return frames;
}

export function proc(id: string, startedAt: string, status: Process["status"] = "completed"): Process {
  return {
    id,
    session_id: "s1",
    run_reason: "codingagent",
    status,
    exit_code: status === "running" ? null : 0,
    started_at: startedAt,
    completed_at: status === "running" ? null : startedAt,
    agent_session_id: null,
  };
}
