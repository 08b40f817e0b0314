// One normalized entry, rendered by kind: Markdown messages, collapsed thinking, tool calls by
// action (command output collapsible, file edits as diffs, searches, todos, web fetches),
// errors; a tool call pending approval carries the Approve/Deny controls.
import { memo, useId } from "react";
import type { ActionType, EntryType, NormalizedEntry, TodoItem, ToolStatus } from "../api/types";
import { ApprovalControls } from "./ApprovalControls";
import { DiffView } from "./DiffView";
import { Markdown } from "./Markdown";
import { StatusBadge } from "./StatusBadge";

const KIND_LABELS: Record<EntryType["type"], string> = {
  user_message: "You",
  assistant_message: "Assistant",
  thinking: "Thinking",
  system_message: "System",
  error_message: "Error",
  tool_use: "Tool",
};

export const EntryView = memo(function EntryView({ entry, index }: { entry: NormalizedEntry; index: number }) {
  const headingId = useId();
  const type = entry.entry_type;
  const label = type.type === "tool_use" ? type.tool_name : KIND_LABELS[type.type] ?? type.type;
  return (
    <article className={`entry entry-${type.type}`} aria-labelledby={headingId}>
      <header className="entry-header">
        <span id={headingId} className="entry-label">
          {label} #{index}
        </span>
        {type.type === "tool_use" && <StatusBadge status={type.status.status} />}
      </header>
      <EntryBody entry={entry} />
    </article>
  );
});

function EntryBody({ entry }: { entry: NormalizedEntry }) {
  const type = entry.entry_type;
  switch (type.type) {
    case "user_message":
    case "assistant_message":
      return <Markdown text={entry.content} />;
    case "thinking":
      return (
        <details>
          <summary>Thinking</summary>
          <Markdown text={entry.content} />
        </details>
      );
    case "system_message":
      return <p className="muted">{entry.content}</p>;
    case "error_message":
      return <p className="error-text">{entry.content}</p>;
    case "tool_use":
      return (
        <>
          <ActionView action={type.action_type} summary={entry.content} />
          <ToolStatusView status={type.status} />
        </>
      );
    default:
      return <p>{entry.content}</p>;
  }
}

function ToolStatusView({ status }: { status: ToolStatus }) {
  if (status.status === "pending_approval") return <ApprovalControls approvalId={status.approval_id} />;
  if (status.status === "denied") return <p className="muted">Denied{status.reason ? `: ${status.reason}` : ""}</p>;
  return null;
}

function ActionView({ action, summary }: { action: ActionType; summary: string }) {
  switch (action.action) {
    case "command_run":
      return <CommandView command={action.command || summary} result={action.result} />;
    case "file_edit":
      return (
        <div>
          <p>
            Edit <code>{action.path}</code>
          </p>
          {(action.changes ?? []).map((change, i) => (
            <DiffView key={i} change={change} />
          ))}
        </div>
      );
    case "file_read":
      return (
        <p>
          Read <code>{action.path}</code>
        </p>
      );
    case "search":
      return (
        <p>
          Search <code>{action.query || summary}</code>
        </p>
      );
    case "web_fetch":
      return (
        <p>
          Fetch{" "}
          <a href={action.url} rel="noreferrer noopener" target="_blank">
            {action.url}
          </a>
        </p>
      );
    case "todo_management":
      return <TodoList todos={action.todos ?? []} />;
    case "tool":
      return (
        <div>
          <p>{summary}</p>
          <details>
            <summary>Arguments and result</summary>
            <pre className="output">{JSON.stringify({ arguments: action.arguments, result: action.result }, null, 2)}</pre>
          </details>
        </div>
      );
    default:
      return <p>{summary}</p>;
  }
}

function CommandView({ command, result }: { command: string; result: { exit_status?: unknown; output?: string | null } | null }) {
  const outputId = useId();
  const exit = describeExit(result?.exit_status);
  return (
    <div>
      <pre className="command">
        <span aria-hidden="true">$ </span>
        {command}
      </pre>
      {exit && <p className="muted">{exit}</p>}
      {result?.output ? (
        <details>
          <summary id={outputId}>Output ({result.output.split("\n").length} lines)</summary>
          <pre className="output" aria-labelledby={outputId}>
            {result.output}
          </pre>
        </details>
      ) : null}
    </div>
  );
}

function describeExit(status: unknown): string | null {
  if (!status || typeof status !== "object") return null;
  const s = status as { type?: string; code?: number; success?: boolean };
  if (s.type === "exit_code" && typeof s.code === "number") return `exit code ${s.code}`;
  if (s.type === "success") return s.success ? "succeeded" : "failed";
  return null;
}

function TodoList({ todos }: { todos: TodoItem[] }) {
  return (
    <ul className="todos">
      {todos.map((todo, i) => (
        <li key={i} className={`todo todo-${todo.status ?? "pending"}`}>
          <span aria-hidden="true">{todo.status === "completed" ? "☑" : todo.status === "in_progress" ? "◐" : "☐"} </span>
          {todo.content}
          <span className="visually-hidden"> ({todo.status ?? "pending"})</span>
        </li>
      ))}
    </ul>
  );
}
