// The sessions list: fetched once, then kept live by `GET /api/events`.
import { useCallback, useEffect, useState } from "react";
import { listSessions } from "../api/client";
import type { Session } from "../api/types";
import { applySessionEvent } from "../state/sessions";
import { useSessionEvents } from "./useSessionEvents";

export function useSessions() {
  const [sessions, setSessions] = useState<Session[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  const refetch = useCallback(() => {
    listSessions().then(
      (list) => {
        setSessions(list);
        setError(null);
      },
      (e: unknown) => setError(e instanceof Error ? e.message : String(e)),
    );
  }, []);

  useEffect(refetch, [refetch]);

  useSessionEvents((event) => {
    if (event.type === "approval_updated") return;
    let refetchNeeded = false;
    setSessions((current) => {
      if (current === null) return current;
      const update = applySessionEvent(current, event);
      refetchNeeded = update.refetch;
      return update.sessions;
    });
    if (refetchNeeded || event.type === "resync") refetch();
  });

  return { sessions, error };
}
