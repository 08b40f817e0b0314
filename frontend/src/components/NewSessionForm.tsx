// Start a session: executor, prompt (agents) or command (`script`, run by `sh -c`), working
// directory, optional setup and cleanup scripts.
import { useState, type FormEvent } from "react";
import { createSession } from "../api/client";
import type { NewSession } from "../api/types";
import { useAction } from "../hooks/useAction";
import { navigate, sessionHref } from "../router";

const EXECUTORS = ["demo", "claude-code", "codex", "script"] as const;

export function NewSessionForm() {
  const [executor, setExecutor] = useState<string>("demo");
  const [text, setText] = useState("");
  const [workingDir, setWorkingDir] = useState("");
  const [setup, setSetup] = useState("");
  const [cleanup, setCleanup] = useState("");
  const { run, busy: sending, error } = useAction();
  const isScript = executor === "script";

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const body: NewSession = {
      executor,
      ...(isScript ? { command: ["sh", "-c", text] } : { prompt: text }),
      ...(workingDir.trim() ? { working_dir: workingDir.trim() } : {}),
      ...(setup.trim() ? { setup_script: setup } : {}),
      ...(cleanup.trim() ? { cleanup_script: cleanup } : {}),
    };
    await run(async () => navigate(sessionHref((await createSession(body)).id)));
  };

  return (
    <form className="card new-session" aria-labelledby="new-session-title" onSubmit={(e) => void submit(e)}>
      <h2 id="new-session-title">New session</h2>
      <label>
        Executor
        <select value={executor} onChange={(e) => setExecutor(e.target.value)}>
          {EXECUTORS.map((name) => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
        </select>
      </label>
      <label>
        {isScript ? "Command" : "Prompt"}
        <textarea required rows={3} value={text} onChange={(e) => setText(e.target.value)} />
      </label>
      <label>
        Working directory
        <input type="text" value={workingDir} onChange={(e) => setWorkingDir(e.target.value)} placeholder="(the server's)" />
      </label>
      <details>
        <summary>Setup and cleanup scripts</summary>
        <label>
          Setup script
          <textarea rows={2} value={setup} onChange={(e) => setSetup(e.target.value)} />
        </label>
        <label>
          Cleanup script
          <textarea rows={2} value={cleanup} onChange={(e) => setCleanup(e.target.value)} />
        </label>
      </details>
      {error && <p role="alert">{error}</p>}
      <button type="submit" className="primary" disabled={sending}>
        Start session
      </button>
    </form>
  );
}
