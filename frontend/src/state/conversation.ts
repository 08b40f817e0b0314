// A session's conversation across its processes, tail first: the newest page of the newest
// process, then older pages and older processes on request ("Load earlier history"), with the
// prepend bookkeeping that keeps the reader's entry in place, and live frames merged by index.
import type { HistoryPage, NormalizedPayload, Process, StreamFrame } from "../api/types";
import { IndexedList, fromPageEntries } from "./indexedList";
import { FIRST_ITEM_BASE } from "./rawBuffer";

export interface Segment {
  process: Process;
  entries: IndexedList<NormalizedPayload>;
  /** Its tail page was loaded (segments are loaded newest process first). */
  loaded: boolean;
  hasMore: boolean;
  nextCursor: number | null;
  truncated: boolean;
  finished: boolean;
}

export type ConversationItem =
  | { kind: "process"; key: string; process: Process }
  | { kind: "entry"; key: string; process: Process; index: number; entry: NormalizedPayload };

/** What "Load earlier history" fetches next. */
export interface OlderRequest {
  processId: string;
  cursor: number | null;
}

export class Conversation {
  readonly segments: Segment[] = [];
  /** Virtuoso's `firstItemIndex`: lowered by the number of items each prepend adds. */
  firstItemIndex = FIRST_ITEM_BASE;
  version = 0;
  private itemsCache: ConversationItem[] | null = null;

  /** Adds new processes (in start order) and refreshes the known ones. */
  setProcesses(processes: readonly Process[]): void {
    const ordered = [...processes].sort(compareStart);
    for (const process of ordered) {
      const segment = this.segment(process.id);
      if (segment) segment.process = process;
      else this.segments.push(newSegment(process));
    }
    this.segments.sort((a, b) => compareStart(a.process, b.process));
    this.changed();
  }

  segment(processId: string): Segment | undefined {
    return this.segments.find((s) => s.process.id === processId);
  }

  /** The newest process: its tail comes first. */
  get newest(): Segment | undefined {
    return this.segments[this.segments.length - 1];
  }

  /** Loaded segments that may still receive frames. */
  get live(): Segment[] {
    return this.segments.filter((s) => s.loaded && !s.finished);
  }

  get entryCount(): number {
    return this.segments.reduce((n, s) => n + s.entries.length, 0);
  }

  get historyTruncated(): boolean {
    return this.segments.some((s) => s.loaded && s.truncated);
  }

  /** A page (tail or older) of one process. Returns the number of items added at the front. */
  applyPage(processId: string, page: HistoryPage<NormalizedPayload>): number {
    const segment = this.segment(processId);
    if (!segment) return 0;
    const before = this.items().length;
    const leading = this.firstLoadedPosition();
    if (!segment.loaded) {
      segment.loaded = true;
      for (const item of fromPageEntries(page.entries)) segment.entries.upsert(item.index, item.entry);
    } else {
      segment.entries.prepend(fromPageEntries(page.entries));
    }
    segment.hasMore = page.has_more;
    segment.nextCursor = page.next_cursor;
    segment.truncated ||= page.history_truncated;
    this.changed();
    const added = this.items().length - before;
    // Items land at the front only when this segment is (now) the oldest loaded one.
    const atFront = leading === -1 || this.segments.indexOf(segment) <= leading;
    if (atFront && before > 0) this.firstItemIndex -= added;
    return atFront ? added : 0;
  }

  /** Marks a process that appeared after the page opened as loaded: its stream brings all. */
  startLive(processId: string): void {
    const segment = this.segment(processId);
    if (!segment || segment.loaded) return;
    segment.loaded = true;
    this.changed();
  }

  applyFrames(processId: string, frames: readonly StreamFrame<NormalizedPayload>[]): void {
    const segment = this.segment(processId);
    if (!segment) return;
    for (const frame of frames) {
      if (frame.type === "finished") segment.finished = true;
      else segment.entries.upsert(frame.entry_index, frame.entry);
    }
    this.changed();
  }

  /** The next page "Load earlier history" needs, or null when the start is reached. */
  olderRequest(): OlderRequest | null {
    const leading = this.firstLoadedPosition();
    if (leading === -1) {
      const newest = this.newest;
      return newest ? { processId: newest.process.id, cursor: null } : null;
    }
    const segment = this.segments[leading] as Segment;
    if (segment.hasMore && segment.nextCursor !== null) {
      return { processId: segment.process.id, cursor: segment.nextCursor };
    }
    const previous = this.segments[leading - 1];
    return previous ? { processId: previous.process.id, cursor: null } : null;
  }

  /** Newest index held for a process (the stream's `after`). */
  newestIndex(processId: string): number | null {
    return this.segment(processId)?.entries.last ?? null;
  }

  /** The flat list the view renders: a process header once its start is loaded, then entries. */
  items(): ConversationItem[] {
    if (this.itemsCache) return this.itemsCache;
    const items: ConversationItem[] = [];
    for (const segment of this.segments) {
      if (!segment.loaded) continue;
      const { process } = segment;
      if (!segment.hasMore) items.push({ kind: "process", key: `p:${process.id}`, process });
      for (const { index, entry } of segment.entries.toArray()) {
        items.push({ kind: "entry", key: `e:${process.id}:${index}`, process, index, entry });
      }
    }
    this.itemsCache = items;
    return items;
  }

  private firstLoadedPosition(): number {
    return this.segments.findIndex((s) => s.loaded);
  }

  private changed(): void {
    this.itemsCache = null;
    this.version += 1;
  }
}

function newSegment(process: Process): Segment {
  return {
    process,
    entries: new IndexedList<NormalizedPayload>(),
    loaded: false,
    hasMore: false,
    nextCursor: null,
    truncated: false,
    finished: process.status !== "running",
  };
}

function compareStart(a: Process, b: Process): number {
  return (a.started_at ?? "").localeCompare(b.started_at ?? "");
}
