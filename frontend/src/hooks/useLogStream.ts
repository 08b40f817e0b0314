// Keeps one v2 log stream open per process in `processIds`, reconnecting with `after`; closes
// the streams of processes that left the set. Components never open sockets themselves.
import { useEffect, useRef } from "react";
import { LogStream } from "../api/stream";
import type { Channel, PayloadOf, StreamFrame } from "../api/types";

export interface LogStreamHandlers<C extends Channel> {
  after: (processId: string) => number | null;
  onFrames: (processId: string, frames: StreamFrame<PayloadOf<C>>[]) => void;
  /**
   * Each (re)connect: `after` replays only newer entries, so an update of an entry at or below
   * it made between the page read and the subscription is re-read here (from then on, every
   * update comes live).
   */
  onOpen?: (processId: string) => void;
}

export function useLogStreams<C extends Channel>(
  channel: C,
  processIds: readonly string[],
  handlers: LogStreamHandlers<C>,
  /** A new value reopens every stream (with a fresh `after`), e.g. after reloading the tail. */
  generation = 0,
): void {
  const streams = useRef(new Map<string, LogStream<C>>());
  const current = useRef(handlers);
  useEffect(() => {
    current.current = handlers;
  });
  const key = processIds.join(",");
  const opened = useRef(generation);

  useEffect(() => {
    if (opened.current !== generation) {
      opened.current = generation;
      for (const stream of streams.current.values()) stream.close();
      streams.current.clear();
    }
    const wanted = new Set(key ? key.split(",") : []);
    for (const [id, stream] of streams.current) {
      if (!wanted.has(id)) {
        stream.close();
        streams.current.delete(id);
      }
    }
    for (const id of wanted) {
      if (streams.current.has(id)) continue;
      streams.current.set(
        id,
        new LogStream<C>({
          processId: id,
          channel,
          after: () => current.current.after(id),
          onFrames: (frames) => current.current.onFrames(id, frames),
          onConnectionChange: (connected) => {
            if (connected) current.current.onOpen?.(id);
          },
        }),
      );
    }
  }, [channel, key, generation]);

  useEffect(() => {
    const open = streams.current;
    return () => {
      for (const stream of open.values()) stream.close();
      open.clear();
    };
  }, []);
}
