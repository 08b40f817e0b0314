// The sessions list (live through the event stream) and the new-session form.
import { useEffect, useState } from "react";
import { NewSessionForm } from "../components/NewSessionForm";
import { StatusBadge } from "../components/StatusBadge";
import { useSessions } from "../hooks/useSessions";
import { Link, sessionHref } from "../router";
import { describeSession, formatDuration, sessionDurationMs, sessionStatus } from "../state/sessions";

export function SessionsView() {
  const { sessions, error } = useSessions();
  const now = useNow(1000);
  return (
    <div className="sessions-page">
      <section aria-labelledby="sessions-title" className="sessions">
        <h1 id="sessions-title">Sessions</h1>
        {error && <p role="alert">{error}</p>}
        {sessions === null ? (
          <p role="status">Loading sessions…</p>
        ) : sessions.length === 0 ? (
          <p>No sessions yet. Start one with the form.</p>
        ) : (
          <div className="table-scroll">
            <table>
              <thead>
                <tr>
                  <th scope="col">Status</th>
                  <th scope="col">Executor</th>
                  <th scope="col">Prompt or command</th>
                  <th scope="col">Started</th>
                  <th scope="col">Duration</th>
                </tr>
              </thead>
              <tbody>
                {sessions.map((session) => (
                  <tr key={session.id}>
                    <td>
                      <StatusBadge status={sessionStatus(session)} />
                    </td>
                    <td>{session.executor}</td>
                    <td className="prompt-cell">
                      <Link href={sessionHref(session.id)}>{describeSession(session)}</Link>
                    </td>
                    <td>
                      <time dateTime={session.created_at}>{new Date(session.created_at).toLocaleString()}</time>
                    </td>
                    <td>{formatDuration(sessionDurationMs(session, now))}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
      <NewSessionForm />
    </div>
  );
}

function useNow(intervalMs: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return now;
}
