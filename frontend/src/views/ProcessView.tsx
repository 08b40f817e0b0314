// The raw log viewer of one process: a bounded, virtualized buffer that follows the tail,
// pauses on scroll-up (the view never moves then), pages back in, opens at a permalinked line,
// searches the whole log on the server, and links the downloads.
import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import { Virtuoso, type VirtuosoHandle } from "react-virtuoso";
import { getProcess, rawDownloadUrl, searchRaw } from "../api/client";
import type { Process, SearchResult } from "../api/types";
import { RawLine } from "../components/RawLine";
import { StatusBadge } from "../components/StatusBadge";
import { useConfig } from "../config";
import { useAction } from "../hooks/useAction";
import { useRawLog } from "../hooks/useRawLog";
import { furtherBackCursor, withOlderHits } from "../state/searchHits";
import { Link, sessionHref } from "../router";

const LINE_HEIGHT = 20;
const SCROLL_UP_KEYS = new Set(["ArrowUp", "PageUp", "Home"]);

export function ProcessView({ processId, line }: { processId: string; line: number | null }) {
  const config = useConfig();
  const raw = useRawLog(processId, config.raw_buffer_lines, line);
  const { buffer } = raw;
  const [process, setProcess] = useState<Process | null>(null);
  const virtuoso = useRef<VirtuosoHandle>(null);

  useEffect(() => {
    getProcess(processId).then(setProcess, () => undefined);
  }, [processId, buffer.finished]);

  // Scroll to a permalinked line or a search hit once it is in the buffer.
  const focusIndex = raw.focus?.index ?? null;
  const focusNonce = raw.focus?.nonce ?? 0;
  useEffect(() => {
    if (focusIndex === null || !raw.ready) return;
    const position = buffer.positionOf(focusIndex);
    if (position !== -1) virtuoso.current?.scrollToIndex({ index: position, align: "center" });
  }, [focusIndex, focusNonce, raw.ready, buffer]);

  const pauseOnScrollUp = (event: KeyboardEvent<HTMLDivElement>) => {
    if (SCROLL_UP_KEYS.has(event.key)) raw.pause();
  };
  const earlier = buffer.earlierNotShown;
  const newer = buffer.newerNotShown;

  return (
    <div className="process-page">
      <div className="session-head">
        <h1>
          <Link href="/">Sessions</Link>
          {process && (
            <>
              {" / "}
              <Link href={sessionHref(process.session_id)}>Session {process.session_id.slice(0, 8)}</Link>
            </>
          )}{" "}
          / Raw log {processId.slice(0, 8)}
        </h1>
        {process && <StatusBadge status={process.status} />}
      </div>
      <div className="toolbar">
        <SearchBox processId={processId} onJump={raw.jumpTo} />
        <span className="downloads">
          Download: <a href={rawDownloadUrl(processId, "text")} download>text</a>{" "}
          <a href={rawDownloadUrl(processId, "ndjson")} download>NDJSON</a>
        </span>
      </div>
      {raw.error && <p role="alert">{raw.error}</p>}
      <div className="raw-notices">
        <p role="status" className={earlier > 0 ? "notice" : "visually-hidden"}>
          {earlier > 0 ? `${earlier.toLocaleString()} earlier lines not shown` : ""}
          {buffer.historyTruncated ? " (older history was lost: history truncated)" : ""}
        </p>
        {buffer.hasMoreBefore && (
          <button type="button" onClick={raw.loadEarlier} disabled={raw.busy}>
            Load earlier lines
          </button>
        )}
      </div>
      <div className="raw-frame">
        {raw.ready && (
          <Virtuoso
            ref={virtuoso}
            className="raw-log"
            role="log"
            aria-label="Raw log"
            aria-live="off"
            tabIndex={0}
            totalCount={buffer.lines.length}
            firstItemIndex={buffer.firstItemIndex}
            fixedItemHeight={LINE_HEIGHT}
            increaseViewportBy={LINE_HEIGHT * 10}
            initialTopMostItemIndex={
              focusIndex !== null && buffer.positionOf(focusIndex) !== -1
                ? { index: buffer.positionOf(focusIndex), align: "center" }
                : { index: "LAST", align: "end" }
            }
            followOutput={() => (buffer.following ? "auto" : false)}
            atBottomThreshold={LINE_HEIGHT * 2}
            onWheel={(event) => {
              if (event.deltaY < 0) raw.pause();
            }}
            onTouchMove={raw.pause}
            onKeyDown={pauseOnScrollUp}
            itemContent={(absolute) => {
              const item = buffer.lineAt(absolute - buffer.firstItemIndex);
              if (!item) return <div className="raw-line" style={{ height: LINE_HEIGHT }} />;
              return <RawLine processId={processId} index={item.index} entry={item.entry} highlighted={item.index === focusIndex} />;
            }}
          />
        )}
        {!buffer.following && (
          <div className="jump">
            <span role="status">{newer > 0 ? `${newer.toLocaleString()} new lines` : "Paused"}</span>
            <button type="button" className="primary" onClick={raw.jumpToLatest} disabled={raw.busy}>
              Jump to latest
            </button>
          </div>
        )}
      </div>
    </div>
  );
}

function SearchBox({ processId, onJump }: { processId: string; onJump: (index: number) => void }) {
  const [query, setQuery] = useState("");
  const [result, setResult] = useState<SearchResult | null>(null);
  const [position, setPosition] = useState(0);
  // The query the hits belong to (the box may have been edited since).
  const [searched, setSearched] = useState("");
  const { run, busy: searching, error } = useAction();
  const cursor = result ? furtherBackCursor(result) : null;

  const searchFurtherBack = async () => {
    if (!result || cursor === null) return;
    await run(async () => {
      const older = await searchRaw(processId, searched, cursor);
      const joined = withOlderHits(result, older);
      setResult(joined);
      // The first older hit, if any: the reader asked to go further back.
      if (joined.matches.length > result.matches.length) {
        setPosition(result.matches.length);
        onJump(joined.matches[result.matches.length] as number);
      }
    });
  };
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!query) return;
    await run(async () => {
      const found = await searchRaw(processId, query);
      setSearched(query);
      setResult(found);
      setPosition(0);
      const first = found.matches[0];
      if (first !== undefined) onJump(first);
    });
  };
  // Matches come newest first: "Previous match" goes to an older line, "Next match" to a newer.
  const go = (step: number) => {
    if (!result || result.matches.length === 0) return;
    const next = (position + step + result.matches.length) % result.matches.length;
    setPosition(next);
    onJump(result.matches[next] as number);
  };
  return (
    <form role="search" aria-label="Search the raw log" className="search" onSubmit={(e) => void submit(e)}>
      <label htmlFor="raw-search" className="visually-hidden">
        Search text
      </label>
      <input id="raw-search" type="search" placeholder="Search the whole log" value={query} onChange={(e) => setQuery(e.target.value)} />
      <button type="submit" disabled={searching}>
        Search
      </button>
      {result && (
        <>
          <button type="button" onClick={() => go(1)} disabled={result.matches.length < 2}>
            Previous match
          </button>
          <button type="button" onClick={() => go(-1)} disabled={result.matches.length < 2}>
            Next match
          </button>
          <span role="status">
            {result.matches.length === 0
              ? result.truncated
                ? "No matches yet"
                : "No matches"
              : `Match ${position + 1} of ${result.matches.length}${result.truncated ? "+" : ""} (line ${result.matches[position]})`}
          </span>
          {cursor !== null && (
            <button type="button" onClick={() => void searchFurtherBack()} disabled={searching}>
              Search further back
            </button>
          )}
        </>
      )}
      {error && <span role="alert">{error}</span>}
    </form>
  );
}

