// Typed HTTP client for the v2 API: the one place that knows URLs and envelopes.
import {
  DEFAULT_UI_CONFIG,
  type Channel,
  type Envelope,
  type HistoryPage,
  type NewSession,
  type PayloadOf,
  type Process,
  type RawPayload,
  type SearchResult,
  type Session,
  type UiConfig,
} from "./types";

/** A non-2xx answer: `status` and the server's message in words. */
export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

async function request<T>(path: string, init?: RequestInit): Promise<T> {
  const response = await fetch(path, {
    credentials: "same-origin",
    ...init,
    headers: { Accept: "application/json", ...(init?.body ? { "Content-Type": "application/json" } : {}) },
  });
  let body: Envelope<T> | null;
  try {
    body = (await response.json()) as Envelope<T>;
  } catch {
    body = null;
  }
  if (!response.ok || body === null || !body.success) {
    throw new ApiError(response.status, body?.message ?? `${response.status} ${response.statusText}`);
  }
  return body.data as T;
}

function post<T>(path: string, body: unknown): Promise<T> {
  return request<T>(path, { method: "POST", body: JSON.stringify(body ?? {}) });
}

const processPath = (id: string) => `/api/execution-processes/${encodeURIComponent(id)}`;
const channelPath = (id: string, channel: Channel) => `${processPath(id)}/${channel}-logs/v2`;

export interface PageQuery {
  limit?: number;
  cursor?: number;
  around?: number;
}

export function fetchPage<C extends Channel>(
  processId: string,
  channel: C,
  query: PageQuery = {},
): Promise<HistoryPage<PayloadOf<C>>> {
  const params = new URLSearchParams();
  if (query.limit !== undefined) params.set("limit", String(query.limit));
  if (query.cursor !== undefined) params.set("cursor", String(query.cursor));
  if (query.around !== undefined) params.set("around", String(query.around));
  const qs = params.toString();
  return request(`${channelPath(processId, channel)}${qs ? `?${qs}` : ""}`);
}

/**
 * The page of `limit` raw entries centred on `index` (permalinks, search hits): `around=N`, or
 * for a server without it, the same page as the entries below cursor `N + limit/2`.
 */
export async function fetchRawPageAround(
  processId: string,
  index: number,
  limit: number,
): Promise<HistoryPage<RawPayload>> {
  const page = await fetchPage(processId, "raw", { limit, around: index }).catch((error: unknown) => {
    if (error instanceof ApiError && error.status === 400) return null;
    throw error;
  });
  if (page && page.entries.some((e) => e.entry_index === index)) return page;
  return fetchPage(processId, "raw", { limit, cursor: index + Math.ceil(limit / 2) });
}

/** One page of hits; `cursor` (a previous result's `next_cursor`) goes on below it. */
export function searchRaw(processId: string, q: string, cursor: number | null = null, limit = 1000): Promise<SearchResult> {
  const params = new URLSearchParams({ q, limit: String(limit) });
  if (cursor !== null) params.set("cursor", String(cursor));
  return request(`${channelPath(processId, "raw")}/search?${params.toString()}`);
}

export function rawDownloadUrl(processId: string, format: "text" | "ndjson"): string {
  return `${channelPath(processId, "raw")}/download?format=${format}`;
}

export function streamUrl(processId: string, channel: Channel, after: number | null): string {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const query = after === null ? "" : `?after=${after}`;
  return `${scheme}//${window.location.host}${channelPath(processId, channel)}/ws${query}`;
}

export const listSessions = (): Promise<Session[]> => request("/api/sessions");
export const getSession = (id: string): Promise<Session> =>
  request(`/api/sessions/${encodeURIComponent(id)}`);
export const createSession = (body: NewSession): Promise<Session> => post("/api/sessions", body);
export const followUp = (sessionId: string, prompt: string): Promise<Process> =>
  post(`/api/sessions/${encodeURIComponent(sessionId)}/follow-up`, { prompt });
export const getProcess = (id: string): Promise<Process> => request(processPath(id));
export const stopProcess = (id: string): Promise<Process> => post(`${processPath(id)}/stop`, {});
export const respondToApproval = (approvalId: string, approved: boolean, reason: string | null) =>
  post(`/api/approvals/${encodeURIComponent(approvalId)}/respond`, { approved, reason });

/**
 * The page's settings. `token` (from a `?token=` link) is sent once so the server can trade
 * it for its cookie. Without the endpoint's answer the page uses the CONTRACT defaults.
 */
export async function fetchConfig(token: string | null): Promise<UiConfig> {
  const query = token ? `?token=${encodeURIComponent(token)}` : "";
  try {
    const data = await request<Partial<UiConfig>>(`/api/config${query}`);
    return { ...DEFAULT_UI_CONFIG, ...data };
  } catch (error) {
    // Only "not signed in" matters here; any other failure leaves the defaults in force.
    if (error instanceof ApiError && error.status !== 401) return DEFAULT_UI_CONFIG;
    throw error;
  }
}
