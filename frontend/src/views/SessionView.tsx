// A session: its conversation (tail first, "Load earlier history", live), its processes with
// links to their raw logs, a follow-up prompt box and a Stop button.
import { useState, type FormEvent } from "react";
import { Virtuoso } from "react-virtuoso";
import { followUp, stopProcess } from "../api/client";
import type { Process } from "../api/types";
import { EntryView } from "../components/EntryView";
import { StatusBadge } from "../components/StatusBadge";
import { useConfig } from "../config";
import { useAction } from "../hooks/useAction";
import { useConversation } from "../hooks/useConversation";
import { Link, processHref } from "../router";
import type { ConversationItem } from "../state/conversation";

const RUN_REASONS: Record<string, string> = {
  setupscript: "Setup script",
  codingagent: "Coding agent turn",
  cleanupscript: "Cleanup script",
  script: "Command",
};

export function SessionView({ sessionId }: { sessionId: string }) {
  const config = useConfig();
  const view = useConversation(sessionId, config.normalized_page_size);
  const running = view.session?.processes.filter((p) => p.status === "running") ?? [];
  return (
    <div className="session-page">
      <div className="session-head">
        <h1>
          <Link href="/">Sessions</Link> / {view.session ? `${view.session.executor} session ${sessionId.slice(0, 8)}` : "Session"}
        </h1>
        <StopButton running={running} />
      </div>
      {view.error && <p role="alert">{view.error}</p>}
      {view.session && <ProcessList processes={view.session.processes} />}
      {view.historyTruncated && (
        <p role="status" className="notice">
          Older entries were evicted and are not stored: history truncated.
        </p>
      )}
      {view.canLoadEarlier && (
        <button type="button" className="load-earlier" onClick={() => void view.loadEarlier()} disabled={view.loadingEarlier} aria-busy={view.loadingEarlier}>
          {view.loadingEarlier && <span className="spinner" aria-hidden="true" />}
          Load earlier history
        </button>
      )}
      {view.loadingEarlier && (
        <span role="status" className="visually-hidden">
          Loading earlier history…
        </span>
      )}
      {!view.ready ? (
        <p role="status">Loading conversation…</p>
      ) : view.items.length === 0 ? (
        // A feed must hold articles: until the first entry there is a notice instead.
        <p role="status" className="conversation empty">
          No conversation entries yet (a command's output is in its raw log).
        </p>
      ) : (
        <Virtuoso<ConversationItem>
          className="conversation"
          role="feed"
          aria-label="Conversation"
          aria-busy={view.loadingEarlier}
          tabIndex={0}
          data={view.items}
          firstItemIndex={view.firstItemIndex}
          initialTopMostItemIndex={{ index: "LAST", align: "end" }}
          // The newest entry is in the first render; the rest follow once the viewport is measured.
          initialItemCount={1}
          computeItemKey={(_i, item) => item.key}
          followOutput={(atBottom) => (atBottom ? "auto" : false)}
          itemContent={(_i, item) => <ItemView item={item} />}
        />
      )}
      {view.session && <FollowUpForm sessionId={sessionId} />}
    </div>
  );
}

function ItemView({ item }: { item: ConversationItem }) {
  if (item.kind === "entry") return <EntryView entry={item.entry.content} index={item.index} />;
  const p = item.process;
  return (
    <div className="process-divider">
      <strong>{RUN_REASONS[p.run_reason] ?? p.run_reason}</strong> <StatusBadge status={p.status} />{" "}
      {p.started_at && <time dateTime={p.started_at}>{new Date(p.started_at).toLocaleTimeString()}</time>}{" "}
      <Link href={processHref(p.id)}>Raw log of this process</Link>
    </div>
  );
}

function ProcessList({ processes }: { processes: Process[] }) {
  return (
    <details className="processes">
      <summary>Processes ({processes.length})</summary>
      <ul>
        {processes.map((p) => (
          <li key={p.id}>
            {RUN_REASONS[p.run_reason] ?? p.run_reason} <StatusBadge status={p.status} />
            {p.exit_code !== null && <span className="muted"> exit {p.exit_code}</span>}{" "}
            <Link href={processHref(p.id)}>Raw log {p.id.slice(0, 8)}</Link>
          </li>
        ))}
      </ul>
    </details>
  );
}

function StopButton({ running }: { running: Process[] }) {
  const { run, busy, error } = useAction();
  const stop = () => run(() => Promise.all(running.map((p) => stopProcess(p.id))));
  return (
    <div>
      <button type="button" className="danger" disabled={running.length === 0 || busy} onClick={() => void stop()}>
        Stop
      </button>
      {error && <p role="alert">{error}</p>}
    </div>
  );
}

function FollowUpForm({ sessionId }: { sessionId: string }) {
  const [prompt, setPrompt] = useState("");
  const { run, busy: sending, error } = useAction();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!prompt.trim()) return;
    if (await run(() => followUp(sessionId, prompt.trim()))) setPrompt("");
  };
  return (
    <form className="follow-up" onSubmit={(e) => void submit(e)}>
      <label htmlFor="follow-up-prompt" className="visually-hidden">
        Follow-up prompt
      </label>
      <textarea
        id="follow-up-prompt"
        rows={2}
        placeholder="Follow-up prompt (resumes the agent's session)"
        value={prompt}
        onChange={(e) => setPrompt(e.target.value)}
      />
      <button type="submit" className="primary" disabled={sending || !prompt.trim()}>
        Send follow-up
      </button>
      {error && <p role="alert">{error}</p>}
    </form>
  );
}
