// Search pages joined newest first; "Search further back" is offered while the server says the
// search stopped early.
import { describe, expect, it } from "vitest";
import { furtherBackCursor, withOlderHits } from "../src/state/searchHits";

describe("withOlderHits", () => {
  it("appends the older page's hits and takes its cursor", () => {
    const first = { matches: [900, 700], truncated: true, next_cursor: 600 };
    expect(furtherBackCursor(first)).toBe(600);
    const joined = withOlderHits(first, { matches: [500, 10], truncated: false, next_cursor: null });
    expect(joined).toEqual({ matches: [900, 700, 500, 10], truncated: false, next_cursor: null });
    expect(furtherBackCursor(joined)).toBeNull();
  });

  it("drops hits it already holds and keeps going while truncated", () => {
    const first = { matches: [900, 700], truncated: true, next_cursor: 700 };
    const joined = withOlderHits(first, { matches: [700, 300], truncated: true, next_cursor: 250 });
    expect(joined.matches).toEqual([900, 700, 300]);
    expect(furtherBackCursor(joined)).toBe(250);
  });

  it("goes on from an empty first page", () => {
    const first = { matches: [], truncated: true, next_cursor: 5000 };
    expect(withOlderHits(first, { matches: [42], truncated: false, next_cursor: null }).matches).toEqual([42]);
  });
});
