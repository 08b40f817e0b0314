// One WebSocket of a v2 log stream, read where it runs (the stream worker in the browser, the
// caller's thread where there are no workers): frames are parsed as they arrive and handed on
// in batches, at most one batch per BATCH_MS, so a producer printing thousands of lines a second
// costs the page one message per batch instead of one task per line. The wire stays one JSON
// frame per WebSocket message (CONTRACT.md).
import type { StreamFrame } from "./types";
import { coalesceFrames } from "../state/frameBatch";

/** About one display frame: the page applies batches once per animation frame anyway. */
export const BATCH_MS = 16;

export type PumpEvent<P = unknown> =
  | { kind: "open" }
  | { kind: "frames"; frames: StreamFrame<P>[] }
  | { kind: "close"; code: number };

export type SocketFactory = (url: string) => WebSocket;

export class FramePump<P = unknown> {
  private readonly socket: WebSocket;
  private pending: StreamFrame<P>[] = [];
  private timer: ReturnType<typeof setTimeout> | null = null;
  private done = false;

  constructor(url: string, emit: (event: PumpEvent<P>) => void, createSocket: SocketFactory) {
    this.socket = createSocket(url);
    this.socket.onopen = () => emit({ kind: "open" });
    this.socket.onmessage = (event: MessageEvent<string>) => {
      this.pending.push(JSON.parse(event.data) as StreamFrame<P>);
      this.timer ??= setTimeout(() => this.flush(emit), BATCH_MS);
    };
    this.socket.onclose = (event: CloseEvent) => {
      if (this.done) return;
      this.done = true;
      // What arrived before the close goes first: the owner's `after` must see it.
      this.flush(emit);
      emit({ kind: "close", code: event.code });
    };
  }

  /** Closes the socket; no event follows. */
  close(code = 1000): void {
    this.done = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.pending = [];
    this.socket.close(code);
  }

  private flush(emit: (event: PumpEvent<P>) => void): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.length === 0) return;
    const frames = coalesceFrames(this.pending);
    this.pending = [];
    emit({ kind: "frames", frames });
  }
}
