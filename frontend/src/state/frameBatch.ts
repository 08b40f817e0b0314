// Stream frames batched between two paints: the frames of one index collapse into its newest
// (a line rewritten with `\r` or growing past 250 ms arrives as one append and many replaces),
// kept at the position of its first frame so an ascending stream stays ascending, and
// `finished` stays last (CONTRACT.md "WebSocket streams": a client that upserts by index).
import type { StreamFrame } from "../api/types";

export function coalesceFrames<P>(frames: readonly StreamFrame<P>[]): StreamFrame<P>[] {
  const out: StreamFrame<P>[] = [];
  const positions = new Map<number, number>();
  let finished: StreamFrame<P> | null = null;
  for (const frame of frames) {
    if (frame.type === "finished") {
      finished = frame;
      continue;
    }
    const position = positions.get(frame.entry_index);
    if (position === undefined) {
      positions.set(frame.entry_index, out.length);
      out.push(frame);
    } else {
      // The entry is the newest; an append stays an append (the index is new to the holder).
      const first = out[position] as StreamFrame<P> & { type: "append" | "replace" };
      out[position] = { type: first.type, entry_index: frame.entry_index, entry: frame.entry };
    }
  }
  if (finished !== null) out.push(finished);
  return out;
}
