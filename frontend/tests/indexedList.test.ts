import { describe, expect, it } from "vitest";
import { IndexedList } from "../src/state/indexedList";

describe("IndexedList", () => {
  it("merges by index: append, replace in place, insert into a gap", () => {
    const list = new IndexedList<string>();
    expect(list.upsert(1, "a")).toBe("appended");
    expect(list.upsert(3, "c")).toBe("appended");
    expect(list.upsert(1, "A")).toBe("replaced");
    expect(list.upsert(2, "b")).toBe("inserted");
    expect(list.toArray().map((e) => `${e.index}${e.entry}`)).toEqual(["1A", "2b", "3c"]);
  });

  it("prepends only entries older than the oldest held", () => {
    const list = new IndexedList<string>();
    list.upsert(5, "e");
    const added = list.prepend([
      { index: 3, entry: "c" },
      { index: 4, entry: "d" },
      { index: 5, entry: "dup" },
    ]);
    expect(added).toBe(2);
    expect(list.toArray().map((e) => e.entry)).toEqual(["c", "d", "e"]);
    expect(list.positionOf(4)).toBe(1);
    expect(list.positionOf(9)).toBe(-1);
  });

  it("drops from either end", () => {
    const list = new IndexedList<number>();
    for (let i = 0; i < 10; i++) list.upsert(i, i);
    list.dropOldest(3);
    list.dropNewest(2);
    expect([list.first, list.last, list.length]).toEqual([3, 7, 5]);
  });
});
