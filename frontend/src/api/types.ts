// Wire shapes of the execlog HTTP API, streams and events (CONTRACT.md). Only src/api/ knows them.

export interface Envelope<T> {
  success: boolean;
  data: T | null;
  message: string | null;
}

export type ProcessStatus = "running" | "completed" | "failed" | "killed";
export type RunReason = "setupscript" | "codingagent" | "cleanupscript" | "script";
export type Channel = "raw" | "normalized";

export interface Process {
  id: string;
  session_id: string;
  run_reason: RunReason;
  status: ProcessStatus;
  exit_code: number | null;
  started_at: string | null;
  completed_at: string | null;
  agent_session_id: string | null;
  /** A coding-agent turn's prompt (servers that say so). */
  prompt?: string | null;
  /** The argv of any other process (servers that say so). */
  command?: string[] | null;
}

export interface Session {
  id: string;
  executor: string;
  working_dir: string | null;
  created_at: string;
  processes: Process[];
  /** True while the server's chain of processes (setup, agent or command, cleanup) runs. */
  active?: boolean;
}

export interface NewSession {
  executor: string;
  prompt?: string | null;
  command?: string[] | null;
  working_dir?: string | null;
  setup_script?: string | null;
  cleanup_script?: string | null;
}

export interface RawPayload {
  type: "STDOUT" | "STDERR";
  content: string;
}

export type ToolStatus =
  | { status: "created" | "success" | "failed" | "timed_out" }
  | { status: "denied"; reason: string | null }
  | { status: "pending_approval"; approval_id: string; requested_at: string; timeout_at: string | null };

export interface FileChange {
  action?: string;
  diff?: string;
  unified_diff?: string;
  old_string?: string;
  new_string?: string;
  content?: string;
  [key: string]: unknown;
}

export interface TodoItem {
  content: string;
  status?: string;
  [key: string]: unknown;
}

export type ActionType =
  | { action: "file_read"; path: string }
  | { action: "file_edit"; path: string; changes: FileChange[] }
  | { action: "command_run"; command: string; result: { exit_status?: unknown; output?: string | null } | null }
  | { action: "search"; query: string }
  | { action: "web_fetch"; url: string }
  | { action: "tool"; tool_name: string; arguments?: unknown; result?: unknown }
  | { action: "todo_management"; todos: TodoItem[] }
  | { action: "other"; description: string };

export type EntryType =
  | { type: "user_message" }
  | { type: "assistant_message" }
  | { type: "thinking" }
  | { type: "system_message" }
  | { type: "error_message"; error_type?: { type: string } }
  | { type: "tool_use"; tool_name: string; action_type: ActionType; status: ToolStatus };

export interface NormalizedEntry {
  timestamp: string | null;
  entry_type: EntryType;
  content: string;
  metadata?: unknown;
}

export interface NormalizedPayload {
  type: "NORMALIZED_ENTRY";
  content: NormalizedEntry;
}

export type PayloadOf<C extends Channel> = C extends "raw" ? RawPayload : NormalizedPayload;

export interface IndexedEntry<P> {
  entry_index: number;
  entry: P;
}

export interface HistoryPage<P> {
  entries: IndexedEntry<P>[];
  next_cursor: number | null;
  has_more: boolean;
  history_truncated: boolean;
}

export type StreamFrame<P> =
  | { type: "append"; entry_index: number; entry: P }
  | { type: "replace"; entry_index: number; entry: P }
  | { type: "finished" };

export interface SearchResult {
  /** Entry indexes, newest first. */
  matches: number[];
  /** The search stopped before the oldest line (hit limit or time budget). */
  truncated: boolean;
  /** When truncated: search again with `cursor` = this to go on below it. */
  next_cursor: number | null;
}

export interface Approval {
  id: string;
  execution_process_id: string;
  tool_use_id: string;
  tool_name: string;
  status: string;
  reason: string | null;
}

export type SessionEvent =
  | { type: "session_created"; session: Session }
  | { type: "session_updated"; session: Session }
  | { type: "process_updated"; process: Process }
  | { type: "approval_updated"; approval: Approval }
  | { type: "resync" };

/** What the server hands the page (`GET /api/config`); defaults when the server has none. */
export interface UiConfig {
  raw_buffer_lines: number;
  raw_page_size: number;
  normalized_page_size: number;
}

export const DEFAULT_UI_CONFIG: UiConfig = {
  raw_buffer_lines: 5000,
  raw_page_size: 200,
  normalized_page_size: 20,
};
