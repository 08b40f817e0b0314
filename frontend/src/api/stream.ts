// A v2 log stream (WebSocket) that reconnects with `after` = the newest index its owner holds,
// so a dropped connection costs neither a gap nor a duplicate (CONTRACT.md "WebSocket streams").
import { streamUrl } from "./client";
import { openRelayedSocket, type RelayedSocket } from "./socketRelay";
import type { Channel, PayloadOf, StreamFrame } from "./types";

export interface LogStreamOptions<C extends Channel> {
  processId: string;
  channel: C;
  /** Asked at every (re)connect: the newest index held, or null for "everything in memory". */
  after: () => number | null;
  onFrames: (frames: StreamFrame<PayloadOf<C>>[]) => void;
  /** Called once when the stream ended with `finished` (never after `close()`). */
  onFinished?: () => void;
  onConnectionChange?: (connected: boolean) => void;
}

/** Close codes after which reconnecting cannot help (unknown process, bad request, auth). */
const PERMANENT_CLOSE_CODES = new Set([4400, 4401, 4403, 4404]);
const MAX_BACKOFF_MS = 5000;
/**
 * Batches reach the owner at most this often. A producer at full speed (16k lines/s measured)
 * otherwise costs a render every frame, and on a busy machine some of those frames ran past
 * 50 ms; a terminal-like refresh of 20 per second reads the same.
 */
export const MIN_FLUSH_INTERVAL_MS = 50;

export class LogStream<C extends Channel> {
  private socket: RelayedSocket | null = null;
  private closed = false;
  private finished = false;
  private attempts = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  // The socket is read off the main thread, in batches (socketRelay.ts); the batches are handed
  // to the owner once per animation frame: a fast producer sends thousands of frames a second.
  private pending: StreamFrame<PayloadOf<C>>[] = [];
  private flushScheduled = false;
  private lastFlush = -Infinity;
  private readonly options: LogStreamOptions<C>;

  constructor(options: LogStreamOptions<C>) {
    this.options = options;
    this.connect();
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.socket?.close();
    this.socket = null;
  }

  private connect(): void {
    if (this.closed) return;
    const { processId, channel } = this.options;
    const socket = openRelayedSocket<PayloadOf<C>>(streamUrl(processId, channel, this.options.after()), (event) => {
      if (this.socket !== socket) return;
      if (event.kind === "open") {
        this.attempts = 0;
        this.options.onConnectionChange?.(true);
      } else if (event.kind === "frames") {
        if (event.frames[event.frames.length - 1]?.type === "finished") this.finished = true;
        this.pending.push(...event.frames);
        this.scheduleFlush();
      } else {
        this.socket = null;
        this.options.onConnectionChange?.(false);
        if (this.closed || this.finished || PERMANENT_CLOSE_CODES.has(event.code)) return;
        const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** this.attempts);
        this.attempts += 1;
        // Deliver what arrived before reconnecting, so `after()` sees the newest index.
        this.flush();
        this.timer = setTimeout(() => this.connect(), delay);
      }
    });
    this.socket = socket;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const run = () => this.flush();
    if (typeof requestAnimationFrame !== "function" || document.visibilityState !== "visible") {
      setTimeout(run, MIN_FLUSH_INTERVAL_MS);
      return;
    }
    // A frame after a quiet spell is shown at the next paint; under a flood, the owner (and
    // React) runs at most every MIN_FLUSH_INTERVAL_MS, on an animation frame.
    const wait = this.lastFlush + MIN_FLUSH_INTERVAL_MS - performance.now();
    if (wait <= 0) requestAnimationFrame(run);
    else setTimeout(() => requestAnimationFrame(run), wait);
  }

  private flush(): void {
    this.flushScheduled = false;
    this.lastFlush = typeof performance === "undefined" ? 0 : performance.now();
    if (this.pending.length === 0 || this.closed) return;
    const frames = this.pending;
    this.pending = [];
    this.options.onFrames(frames);
    if (frames[frames.length - 1]?.type === "finished") this.options.onFinished?.();
  }
}
