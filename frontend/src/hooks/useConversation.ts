// A session's conversation: the tail of its newest process first, older pages on request, live
// frames for running processes, process changes from the session event stream.
import { useCallback, useEffect, useState } from "react";
import { fetchPage, getSession } from "../api/client";
import { fetchConversationStart, takeConversationStart } from "../api/conversationStart";
import type { Session } from "../api/types";
import { Conversation } from "../state/conversation";
import { withProcess } from "../state/sessions";
import { errorMessage, useAction } from "./useAction";
import { useLogStreams } from "./useLogStream";
import { useSessionEvents } from "./useSessionEvents";

/** Tail-first: at least this many entries before the first paint settles (CONTRACT default). */
const FIRST_ENTRIES = 20;
/** Bound on the pages fetched to reach FIRST_ENTRIES across short processes. */
const MAX_FILL_PAGES = 10;
/** Newest entries re-read when a stream (re)connects (CONTRACT.md bound on `limit`). */
const REFRESH_LIMIT = 200;

export function useConversation(sessionId: string, pageSize: number) {
  const [conversation] = useState(() => new Conversation());
  const [, setVersion] = useState(0);
  const [session, setSession] = useState<Session | null>(null);
  const [error, setError] = useState<string | null>(null);
  const { run, busy: loadingEarlier, error: loadError } = useAction();
  const [ready, setReady] = useState(false);
  const rerender = useCallback(() => setVersion(conversation.version), [conversation]);

  const loadOlder = useCallback(async (): Promise<boolean> => {
    const request = conversation.olderRequest();
    if (request === null) return false;
    const page = await fetchPage(request.processId, "normalized", {
      limit: pageSize,
      ...(request.cursor === null ? {} : { cursor: request.cursor }),
    });
    conversation.applyPage(request.processId, page);
    return true;
  }, [conversation, pageSize]);

  useEffect(() => {
    let cancelled = false;
    (async () => {
      const prefetched = takeConversationStart(sessionId);
      const start = await (prefetched ?? fetchConversationStart(sessionId, pageSize)).catch(() =>
        fetchConversationStart(sessionId, pageSize),
      );
      if (cancelled) return;
      setSession(start.session);
      conversation.setProcesses(start.session.processes);
      if (start.tail) conversation.applyPage(start.tail.processId, start.tail.page);
      for (let pages = 0; pages < MAX_FILL_PAGES && conversation.entryCount < FIRST_ENTRIES; pages++) {
        if (!(await loadOlder()) || cancelled) break;
      }
      if (cancelled) return;
      setReady(true);
      rerender();
    })().catch((e: unknown) => {
      if (!cancelled) setError(errorMessage(e));
    });
    return () => {
      cancelled = true;
    };
  }, [sessionId, conversation, loadOlder, rerender, pageSize]);

  const loadEarlier = useCallback(async () => {
    await run(loadOlder);
    rerender();
  }, [loadOlder, rerender, run]);

  useSessionEvents((event) => {
    if (event.type === "process_updated" && event.process.session_id === sessionId) {
      const isNew = conversation.segment(event.process.id) === undefined;
      conversation.setProcesses([event.process]);
      // A process started after the page opened: its stream brings every entry.
      if (isNew && ready) conversation.startLive(event.process.id);
      setSession((s) => (s ? withProcess(s, event.process) : s));
      rerender();
    } else if (event.type === "session_updated" && event.session.id === sessionId) {
      setSession(event.session);
    } else if (event.type === "resync") {
      getSession(sessionId).then((fresh) => {
        setSession(fresh);
        conversation.setProcesses(fresh.processes);
        rerender();
      }, () => undefined);
    }
  });

  const liveIds = ready ? conversation.live.map((s) => s.process.id) : [];
  useLogStreams("normalized", liveIds, {
    after: (id) => conversation.newestIndex(id),
    onFrames: (id, frames) => {
      conversation.applyFrames(id, frames);
      rerender();
    },
    onOpen: (id) => {
      const held = conversation.segment(id)?.entries.length ?? 0;
      if (held === 0) return;
      fetchPage(id, "normalized", { limit: Math.min(held, REFRESH_LIMIT) }).then((page) => {
        conversation.applyFrames(id, page.entries.map((e) => ({ type: "replace", ...e })));
        rerender();
      }, () => undefined);
    },
  });

  return {
    conversation,
    items: conversation.items(),
    firstItemIndex: conversation.firstItemIndex,
    canLoadEarlier: ready && conversation.olderRequest() !== null,
    historyTruncated: conversation.historyTruncated,
    loadEarlier,
    loadingEarlier,
    ready,
    session,
    error: error ?? loadError,
  };
}
