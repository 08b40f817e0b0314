// The first data of a conversation: the session, then the tail page of its newest process.
// A deep link starts these requests when the page boots (src/boot.ts, inlined in index.html,
// before the app's code is loaded), so the first entries paint one round of waterfalls sooner.
import { fetchPage, getSession } from "./client";
import type { HistoryPage, NormalizedPayload, Session } from "./types";
import { DEFAULT_UI_CONFIG } from "./types";
import { newestProcess } from "../state/sessions";

export interface ConversationStart {
  session: Session;
  tail: { processId: string; page: HistoryPage<NormalizedPayload> } | null;
}

export async function fetchConversationStart(sessionId: string, limit: number): Promise<ConversationStart> {
  const session = await getSession(sessionId);
  const newest = newestProcess(session);
  if (!newest) return { session, tail: null };
  const page = await fetchPage(newest.id, "normalized", { limit });
  return { session, tail: { processId: newest.id, page } };
}

declare global {
  interface Window {
    /** Requests started before the app's bundle ran (the inlined boot script, src/boot.ts). */
    execlogConversationStarts?: Map<string, Promise<ConversationStart>>;
  }
}

// Kept on the window: the boot script inlined in index.html has its own copy of this module.
const started = (window.execlogConversationStarts ??= new Map<string, Promise<ConversationStart>>());

/** Starts the requests now, unless already started; the view takes the result once (a failure is retried there). */
export function prefetchConversationStart(sessionId: string): void {
  if (started.has(sessionId)) return;
  const request = fetchConversationStart(sessionId, DEFAULT_UI_CONFIG.normalized_page_size);
  request.catch(() => undefined); // the view reports errors when it asks again
  started.set(sessionId, request);
}

export function takeConversationStart(sessionId: string): Promise<ConversationStart> | null {
  const request = started.get(sessionId) ?? null;
  started.delete(sessionId);
  return request;
}
