import { describe, expect, it } from "vitest";
import { Conversation } from "../src/state/conversation";
import { FIRST_ITEM_BASE } from "../src/state/rawBuffer";
import { appends, message, page, proc } from "./helpers";

function twoProcesses(): Conversation {
  const conversation = new Conversation();
  conversation.setProcesses([proc("p2", "2026-01-01T00:01:00Z", "running"), proc("p1", "2026-01-01T00:00:00Z")]);
  return conversation;
}

describe("Conversation", () => {
  it("loads the newest process's tail first", () => {
    const conversation = twoProcesses();
    expect(conversation.olderRequest()).toEqual({ processId: "p2", cursor: null });
    conversation.applyPage("p2", page(message, 80, 99));
    const items = conversation.items();
    expect(items).toHaveLength(20);
    expect(items[0]).toMatchObject({ kind: "entry", index: 80 });
    expect(conversation.olderRequest()).toEqual({ processId: "p2", cursor: 80 });
    expect(conversation.newestIndex("p2")).toBe(99);
  });

  it("pages older entries, then the older process, keeping prepend bookkeeping", () => {
    const conversation = twoProcesses();
    conversation.applyPage("p2", page(message, 20, 39));
    expect(conversation.applyPage("p2", page(message, 0, 19))).toBe(21); // 20 + the header
    expect(conversation.firstItemIndex).toBe(FIRST_ITEM_BASE - 21);
    expect(conversation.items()[0]).toMatchObject({ kind: "process", process: { id: "p2" } });
    expect(conversation.olderRequest()).toEqual({ processId: "p1", cursor: null });
    expect(conversation.applyPage("p1", page(message, 0, 4))).toBe(6);
    expect(conversation.firstItemIndex).toBe(FIRST_ITEM_BASE - 27);
    expect(conversation.olderRequest()).toBeNull();
    expect(conversation.items().map((i) => i.key).slice(0, 3)).toEqual(["p:p1", "e:p1:0", "e:p1:1"]);
  });

  it("merges live frames by index and replaces in place", () => {
    const conversation = twoProcesses();
    conversation.applyPage("p2", page(message, 0, 4));
    conversation.applyFrames("p2", [...appends(message, 4, 6), { type: "replace", ...message(2, "decided") }]);
    const entries = conversation.items().filter((i) => i.kind === "entry");
    expect(entries.map((i) => (i.kind === "entry" ? i.index : -1))).toEqual([0, 1, 2, 3, 4, 5, 6]);
    const second = entries[2];
    expect(second?.kind === "entry" && second.entry.content.content).toBe("decided");
    expect(conversation.firstItemIndex).toBe(FIRST_ITEM_BASE);
    expect(conversation.newestIndex("p2")).toBe(6);
  });

  it("closes a stream that finished and starts a process that appears later", () => {
    const conversation = twoProcesses();
    conversation.applyPage("p2", page(message, 0, 1));
    expect(conversation.live.map((s) => s.process.id)).toEqual(["p2"]);
    conversation.applyFrames("p2", [{ type: "finished" }]);
    expect(conversation.live).toEqual([]);
    conversation.setProcesses([proc("p3", "2026-01-01T00:02:00Z", "running")]);
    conversation.startLive("p3");
    expect(conversation.live.map((s) => s.process.id)).toEqual(["p3"]);
    conversation.applyFrames("p3", appends(message, 0, 0));
    expect(conversation.items().at(-1)).toMatchObject({ kind: "entry", process: { id: "p3" }, index: 0 });
  });

  it("says when the history is truncated", () => {
    const conversation = twoProcesses();
    conversation.applyPage("p2", page(message, 10, 19, 0, true));
    expect(conversation.historyTruncated).toBe(true);
  });
});
