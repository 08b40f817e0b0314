// The hits of a raw-log search across its pages: the server searches newest first and stops
// early (hit limit or time budget) with a `next_cursor`; "Search further back" asks for the page
// below it and appends its (older) hits, so the list stays newest first and the reader's current
// hit keeps its position (issue 12, "Search within the process's whole log").
import type { SearchResult } from "../api/types";

export function withOlderHits(current: SearchResult, older: SearchResult): SearchResult {
  const last = current.matches[current.matches.length - 1];
  // Pages never overlap; this guards against a repeated request all the same.
  const fresh = last === undefined ? older.matches : older.matches.filter((index) => index < last);
  return {
    matches: [...current.matches, ...fresh],
    truncated: older.truncated,
    next_cursor: older.truncated ? older.next_cursor : null,
  };
}

/** The cursor to search further back with, or null when the whole log was searched. */
export function furtherBackCursor(result: SearchResult): number | null {
  return result.truncated ? (result.next_cursor ?? null) : null;
}
