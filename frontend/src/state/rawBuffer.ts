// The raw viewer's bounded line buffer: follow mode, trimming with a count of the earlier lines
// not shown, paging back with "Load earlier" (trimming the other end), and a paused mode that
// stops taking new lines and only counts them (issue 12, "Raw log viewer").
import type { HistoryPage, RawPayload, StreamFrame } from "../api/types";
import { IndexedList, fromPageEntries, type Indexed } from "./indexedList";

/** Virtuoso's `firstItemIndex` must stay positive while items are prepended. */
export const FIRST_ITEM_BASE = 1_000_000_000;

export class RawBuffer {
  readonly capacity: number;
  readonly lines = new IndexedList<RawPayload>();
  /** Following the tail: new lines are taken in and the oldest trimmed. */
  following = true;
  /** An older entry exists than the oldest held (it can be paged back in). */
  hasMoreBefore = false;
  /** The server said older entries are lost. */
  historyTruncated = false;
  /** The newest index known to exist (pages and stream frames), held or not. */
  newestKnown: number | null = null;
  finished = false;
  /** Virtuoso's `firstItemIndex`: lowered by every prepend so the view stays put. */
  firstItemIndex = FIRST_ITEM_BASE;
  /** Bumped by every change; views re-render on it. */
  version = 0;

  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity ${capacity}`);
    this.capacity = capacity;
  }

  /** Lines older than the buffer (the "N earlier lines not shown" notice). */
  get earlierNotShown(): number {
    return this.hasMoreBefore ? (this.lines.first ?? 0) : 0;
  }

  /** Lines newer than the buffer: arrived while paused, or trimmed by "Load earlier". */
  get newerNotShown(): number {
    if (this.newestKnown === null) return 0;
    return Math.max(0, this.newestKnown - (this.lines.last ?? -1));
  }

  /** Replaces the buffer with a tail page and follows from there. */
  loadTail(page: HistoryPage<RawPayload>): void {
    this.reset(page);
    this.following = true;
    this.trimOldest();
  }

  /** Replaces the buffer with the page around a line (permalink, search hit); paused. */
  loadAround(page: HistoryPage<RawPayload>): void {
    this.reset(page);
    this.following = false;
  }

  /** Pages older lines in; trims the newest end back to capacity. Returns lines added. */
  prependPage(page: HistoryPage<RawPayload>): number {
    const added = this.lines.prepend(fromPageEntries(page.entries));
    this.hasMoreBefore = page.has_more;
    this.historyTruncated ||= page.history_truncated;
    this.firstItemIndex -= added;
    const excess = this.lines.length - this.capacity;
    if (excess > 0) {
      this.lines.dropNewest(excess);
      this.following = false;
    }
    this.version += 1;
    return added;
  }

  pause(): void {
    if (!this.following) return;
    this.following = false;
    this.version += 1;
  }

  applyFrames(frames: readonly StreamFrame<RawPayload>[]): void {
    for (const frame of frames) {
      if (frame.type === "finished") {
        this.finished = true;
        continue;
      }
      const index = frame.entry_index;
      if (this.newestKnown === null || index > this.newestKnown) this.newestKnown = index;
      if (this.lines.has(index)) {
        this.lines.upsert(index, frame.entry);
      } else if (this.following && (this.lines.last === null || index > this.lines.last)) {
        this.lines.upsert(index, frame.entry);
      }
      // Otherwise: paused or older than the buffer - counted through newestKnown, not held.
    }
    if (this.following) this.trimOldest();
    this.version += 1;
  }

  /** Position in `lines` of an entry index, or -1. */
  positionOf(index: number): number {
    return this.lines.positionOf(index);
  }

  lineAt(position: number): Indexed<RawPayload> | undefined {
    return this.lines.at(position);
  }

  private reset(page: HistoryPage<RawPayload>): void {
    this.lines.clear();
    for (const item of fromPageEntries(page.entries)) this.lines.upsert(item.index, item.entry);
    this.hasMoreBefore = page.has_more;
    this.historyTruncated = page.history_truncated;
    // What the page holds is the newest known until the stream says otherwise.
    this.newestKnown = this.lines.last;
    this.firstItemIndex = FIRST_ITEM_BASE;
    this.version += 1;
  }

  private trimOldest(): void {
    const excess = this.lines.length - this.capacity;
    if (excess <= 0) return;
    this.lines.dropOldest(excess);
    this.hasMoreBefore = true;
    // firstItemIndex is left alone: only prepends move it (Virtuoso's contract); while
    // following, the view is pinned to the bottom anyway.
  }
}
