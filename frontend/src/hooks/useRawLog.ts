// The raw viewer's data: the tail (or the page around a permalinked line), one live stream,
// paging back ("Load earlier"), pausing, "Jump to latest" (reload the tail, reopen the stream
// after it) and jumping to search hits.
import { useCallback, useEffect, useRef, useState } from "react";
import { fetchPage, fetchRawPageAround } from "../api/client";
import type { RawPayload, StreamFrame } from "../api/types";
import { RawBuffer } from "../state/rawBuffer";
import { useAction } from "./useAction";
import { useLogStreams } from "./useLogStream";

const MAX_PAGE = 1000; // the API's upper bound on `limit`

export interface Focus {
  index: number;
  nonce: number;
}

export function useRawLog(processId: string, capacity: number, line: number | null) {
  const [buffer] = useState(() => new RawBuffer(capacity));
  const [, setVersion] = useState(0);
  const [ready, setReady] = useState(false);
  const action = useAction();
  const [generation, setGeneration] = useState(0);
  const [focus, setFocus] = useState<Focus | null>(line === null ? null : { index: line, nonce: 0 });
  // The stream resumes after this index: the newest one held or counted.
  const streamAfter = useRef<number | null>(null);
  // Bumped when the buffer is reloaded; frames of a stream connected before that are stale
  // (they would land after a gap), so they are dropped until the stream reconnects.
  const epoch = useRef(0);
  const streamEpoch = useRef(0);
  const rerender = useCallback(() => setVersion(buffer.version), [buffer]);
  const pageLimit = Math.min(MAX_PAGE, capacity);

  const loadTail = useCallback(async () => {
    const page = await fetchPage(processId, "raw", { limit: pageLimit });
    epoch.current += 1;
    buffer.loadTail(page);
    streamAfter.current = buffer.lines.last;
    setGeneration((g) => g + 1);
  }, [buffer, pageLimit, processId]);

  const loadAround = useCallback(
    async (index: number) => {
      const [around, tail] = await Promise.all([
        fetchRawPageAround(processId, index, pageLimit),
        fetchPage(processId, "raw", { limit: 1 }),
      ]);
      epoch.current += 1;
      buffer.loadAround(around);
      // Lines after the tail's newest come from the stream (and are only counted while paused).
      buffer.applyFrames(tail.entries.map((e) => ({ type: "replace", ...e })));
      streamAfter.current = buffer.newestKnown;
      setGeneration((g) => g + 1);
    },
    [buffer, pageLimit, processId],
  );

  const runAction = action.run;
  const run = useCallback(
    async (task: () => Promise<void>) => {
      await runAction(task);
      setReady(true);
      rerender();
    },
    [rerender, runAction],
  );

  useEffect(() => {
    // The first load; `run` reports its outcome through state once the fetch settles.
    // eslint-disable-next-line react-hooks/set-state-in-effect
    void run(() => (line === null ? loadTail() : loadAround(line)));
  }, [line, loadAround, loadTail, run]);

  useLogStreams(
    "raw",
    ready && !buffer.finished ? [processId] : [],
    {
      after: () => {
        streamEpoch.current = epoch.current;
        return streamAfter.current;
      },
      onOpen: () => {
        // A line still growing when the page was read (a partial line) is re-read.
        const refreshed = epoch.current;
        fetchPage(processId, "raw", { limit: 20 }).then((page) => {
          if (epoch.current !== refreshed) return;
          buffer.applyFrames(page.entries.map((e) => ({ type: "replace", ...e })));
          rerender();
        }, () => undefined);
      },
      onFrames: (_id, frames: StreamFrame<RawPayload>[]) => {
        if (streamEpoch.current !== epoch.current) return;
        buffer.applyFrames(frames);
        if (buffer.newestKnown !== null) streamAfter.current = buffer.newestKnown;
        rerender();
      },
    },
    generation,
  );

  const jumpTo = useCallback(
    (index: number) => {
      if (buffer.positionOf(index) !== -1) {
        buffer.pause();
        setFocus((f) => ({ index, nonce: (f?.nonce ?? 0) + 1 }));
        rerender();
        return;
      }
      void run(async () => {
        await loadAround(index);
        setFocus((f) => ({ index, nonce: (f?.nonce ?? 0) + 1 }));
      });
    },
    [buffer, loadAround, rerender, run],
  );

  return {
    buffer,
    ready,
    busy: action.busy,
    error: action.error,
    focus,
    pause: () => {
      buffer.pause();
      rerender();
    },
    jumpToLatest: () => {
      setFocus(null);
      void run(loadTail);
    },
    loadEarlier: () =>
      void run(async () => {
        const first = buffer.lines.first;
        if (first === null) return;
        buffer.prependPage(await fetchPage(processId, "raw", { limit: pageLimit, cursor: first }));
      }),
    jumpTo,
  };
}
