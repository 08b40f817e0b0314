// Entries kept in ascending entry-index order; frames and pages are merged by index, so a
// replayed or replaced entry never shows twice (CONTRACT.md: "an update keeps its index").

export interface Indexed<P> {
  index: number;
  entry: P;
}

export type UpsertResult = "appended" | "replaced" | "inserted";

export class IndexedList<P> {
  private readonly items: Indexed<P>[] = [];

  get length(): number {
    return this.items.length;
  }

  /** The oldest index held, or null when empty. */
  get first(): number | null {
    return this.items[0]?.index ?? null;
  }

  /** The newest index held, or null when empty. */
  get last(): number | null {
    return this.items[this.items.length - 1]?.index ?? null;
  }

  at(position: number): Indexed<P> | undefined {
    return this.items[position];
  }

  toArray(): readonly Indexed<P>[] {
    return this.items;
  }

  /** Position of `index`, or -1. */
  positionOf(index: number): number {
    const position = this.lowerBound(index);
    return this.items[position]?.index === index ? position : -1;
  }

  has(index: number): boolean {
    return this.positionOf(index) !== -1;
  }

  upsert(index: number, entry: P): UpsertResult {
    const last = this.last;
    if (last === null || index > last) {
      this.items.push({ index, entry });
      return "appended";
    }
    const position = this.lowerBound(index);
    const found = this.items[position];
    if (found !== undefined && found.index === index) {
      found.entry = entry;
      return "replaced";
    }
    this.items.splice(position, 0, { index, entry });
    return "inserted";
  }

  /** Adds the entries older than the oldest held; returns how many were added. */
  prepend(entries: readonly Indexed<P>[]): number {
    const first = this.first;
    const older = entries.filter((e) => first === null || e.index < first);
    older.sort((a, b) => a.index - b.index);
    this.items.unshift(...older.map((e) => ({ index: e.index, entry: e.entry })));
    return older.length;
  }

  dropOldest(count: number): void {
    if (count > 0) this.items.splice(0, count);
  }

  dropNewest(count: number): void {
    if (count > 0) this.items.splice(this.items.length - count, count);
  }

  clear(): void {
    this.items.length = 0;
  }

  private lowerBound(index: number): number {
    let low = 0;
    let high = this.items.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((this.items[mid] as Indexed<P>).index < index) low = mid + 1;
      else high = mid;
    }
    return low;
  }
}

/** Page entries as held items. */
export function fromPageEntries<P>(entries: readonly { entry_index: number; entry: P }[]): Indexed<P>[] {
  return entries.map((e) => ({ index: e.entry_index, entry: e.entry }));
}
