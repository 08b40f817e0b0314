import { describe, expect, it } from "vitest";
import { FIRST_ITEM_BASE, RawBuffer } from "../src/state/rawBuffer";
import { appends, page, raw } from "./helpers";

describe("RawBuffer", () => {
  it("loads the tail and follows: frames merge by index, the oldest are trimmed and counted", () => {
    const buffer = new RawBuffer(100);
    buffer.loadTail(page(raw, 50, 99));
    expect(buffer.earlierNotShown).toBe(50);
    buffer.applyFrames(appends(raw, 100, 179));
    expect(buffer.lines.length).toBe(100);
    expect([buffer.lines.first, buffer.lines.last]).toEqual([80, 179]);
    expect(buffer.earlierNotShown).toBe(80);
    expect(buffer.newerNotShown).toBe(0);
  });

  it("replaces a held line in place (a growing progress line)", () => {
    const buffer = new RawBuffer(10);
    buffer.loadTail(page(raw, 0, 4));
    buffer.applyFrames([{ type: "replace", entry_index: 4, entry: { type: "STDOUT", content: "50%\r100%" } }]);
    expect(buffer.lines.length).toBe(5);
    expect(buffer.lineAt(4)?.entry.content).toBe("50%\r100%");
    expect(buffer.earlierNotShown).toBe(0);
  });

  it("ignores duplicates of a reconnect (after = newest held)", () => {
    const buffer = new RawBuffer(10);
    buffer.loadTail(page(raw, 0, 4));
    buffer.applyFrames(appends(raw, 3, 6));
    expect(buffer.lines.toArray().map((l) => l.index)).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it("while paused takes no new lines, counts them, and never trims", () => {
    const buffer = new RawBuffer(10);
    buffer.loadTail(page(raw, 0, 9));
    buffer.pause();
    const before = buffer.lines.toArray().map((l) => l.index);
    buffer.applyFrames(appends(raw, 10, 1009));
    expect(buffer.lines.toArray().map((l) => l.index)).toEqual(before);
    expect(buffer.newerNotShown).toBe(1000);
    expect(buffer.firstItemIndex).toBe(FIRST_ITEM_BASE);
  });

  it("Load earlier pages older lines in, trims the newest end and lowers firstItemIndex", () => {
    const buffer = new RawBuffer(10);
    buffer.loadTail(page(raw, 90, 99));
    const added = buffer.prependPage(page(raw, 85, 89));
    expect(added).toBe(5);
    expect([buffer.lines.first, buffer.lines.last]).toEqual([85, 94]);
    expect(buffer.earlierNotShown).toBe(85);
    expect(buffer.newerNotShown).toBe(5);
    expect(buffer.following).toBe(false);
    expect(buffer.firstItemIndex).toBe(FIRST_ITEM_BASE - 5);
  });

  it("a permalink page is paused and knows lines newer than it", () => {
    const buffer = new RawBuffer(100);
    buffer.applyFrames([]);
    buffer.loadAround(page(raw, 40, 60));
    buffer.applyFrames(appends(raw, 500, 500));
    expect(buffer.following).toBe(false);
    expect(buffer.newerNotShown).toBe(440);
    expect(buffer.positionOf(50)).toBe(10);
  });

  it("keeps the server's history_truncated and the finished frame", () => {
    const buffer = new RawBuffer(10);
    buffer.loadTail(page(raw, 5, 9, 0, true));
    buffer.applyFrames([{ type: "finished" }]);
    expect(buffer.historyTruncated).toBe(true);
    expect(buffer.finished).toBe(true);
  });

  it("refuses a capacity below one", () => {
    expect(() => new RawBuffer(0)).toThrow(RangeError);
  });
});
