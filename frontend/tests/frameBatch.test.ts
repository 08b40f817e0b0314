// Frames batched between two paints collapse by index (newest entry, first position), so an
// ascending stream stays ascending and `finished` stays last.
import { describe, expect, it } from "vitest";
import type { RawPayload, StreamFrame } from "../src/api/types";
import { coalesceFrames } from "../src/state/frameBatch";
import { RawBuffer } from "../src/state/rawBuffer";
import { appends, raw } from "./helpers";

const replace = (index: number, content: string): StreamFrame<RawPayload> => ({ type: "replace", ...raw(index, content) });

describe("coalesceFrames", () => {
  it("keeps one frame per index with its newest entry, at its first position", () => {
    const frames = [...appends(raw, 5, 6), replace(5, "5 grown"), replace(5, "5 done"), ...appends(raw, 7, 7)];
    expect(coalesceFrames(frames)).toEqual([
      { type: "append", ...raw(5, "5 done") },
      { type: "append", ...raw(6) },
      { type: "append", ...raw(7) },
    ]);
  });

  it("keeps finished last and replace frames as replace", () => {
    const frames: StreamFrame<RawPayload>[] = [replace(2, "a"), { type: "finished" }, replace(2, "b")];
    expect(coalesceFrames(frames)).toEqual([replace(2, "b"), { type: "finished" }]);
  });

  it("leaves a following buffer as the frames one by one would", () => {
    const frames = [...appends(raw, 0, 9), replace(3, "3 again"), ...appends(raw, 10, 14), replace(12, "12 again")];
    const one = new RawBuffer(8);
    for (const frame of frames) one.applyFrames([frame]);
    const batched = new RawBuffer(8);
    batched.applyFrames(coalesceFrames(frames));
    expect(batched.lines.toArray()).toEqual(one.lines.toArray());
    expect(batched.earlierNotShown).toBe(one.earlierNotShown);
  });
});
