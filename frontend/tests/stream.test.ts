// The log stream against a real WebSocket server (the `ws` package): a dropped connection
// reconnects with `after` = the newest index held, so nothing is lost or repeated.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WebSocket as NodeWebSocket, WebSocketServer } from "ws";
import { LogStream } from "../src/api/stream";
import type { RawPayload } from "../src/api/types";
import { IndexedList } from "../src/state/indexedList";

let server: WebSocketServer;
const urls: string[] = [];

beforeEach(async () => {
  urls.length = 0;
  server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address() as { port: number };
  Object.assign(globalThis, {
    WebSocket: NodeWebSocket,
    window: { location: { protocol: "http:", host: `127.0.0.1:${port}` } },
  });
});

afterEach(async () => {
  await new Promise((resolve) => server.close(resolve));
});

const frame = (index: number) =>
  JSON.stringify({ type: "append", entry_index: index, entry: { type: "STDOUT", content: `line ${index}` } });

describe("LogStream", () => {
  it("reconnects after a drop with after = the newest index held", async () => {
    server.on("connection", (socket, request) => {
      urls.push(request.url ?? "");
      if (urls.length === 1) {
        for (const i of [0, 1, 2]) socket.send(frame(i));
        setTimeout(() => socket.terminate(), 50); // the connection drops, no close frame
      } else {
        socket.send(frame(3));
        socket.send(JSON.stringify({ type: "finished" }));
        socket.close(1000);
      }
    });
    const held = new IndexedList<RawPayload>();
    const finished = new Promise<void>((resolve) => {
      new LogStream({
        processId: "p1",
        channel: "raw",
        after: () => held.last,
        onFrames: (frames) => {
          for (const f of frames) if (f.type !== "finished") held.upsert(f.entry_index, f.entry);
        },
        onFinished: resolve,
      });
    });
    await finished;
    expect(urls).toEqual([
      "/api/execution-processes/p1/raw-logs/v2/ws",
      "/api/execution-processes/p1/raw-logs/v2/ws?after=2",
    ]);
    expect(held.toArray().map((e) => e.index)).toEqual([0, 1, 2, 3]);
  });

  it("does not reconnect after finished or a permanent close code", async () => {
    let closes = 0;
    server.on("connection", (socket, request) => {
      urls.push(request.url ?? "");
      socket.close(4404, "execution_process_not_found");
    });
    await new Promise<void>((resolve) => {
      new LogStream({
        processId: "gone",
        channel: "normalized",
        after: () => null,
        onFrames: () => undefined,
        onConnectionChange: (connected) => {
          if (!connected && ++closes === 1) setTimeout(resolve, 600); // past the first backoff
        },
      });
    });
    expect(urls).toHaveLength(1);
  });
});

describe("FramePump", () => {
  it("hands a burst of frames over in a few batches, in order, close last", async () => {
    const { FramePump } = await import("../src/api/framePump");
    const count = 5000;
    server.on("connection", (socket) => {
      for (let i = 0; i < count; i++) socket.send(frame(i));
      socket.send(JSON.stringify({ type: "finished" }));
      socket.close(1000);
    });
    const batches: number[][] = [];
    const { port } = server.address() as { port: number };
    const closed = await new Promise<number>((resolve) => {
      new FramePump<RawPayload>(
        `ws://127.0.0.1:${port}/`,
        (event) => {
          if (event.kind === "frames") batches.push(event.frames.map((f) => (f.type === "finished" ? -1 : f.entry_index)));
          if (event.kind === "close") resolve(event.code);
        },
        (url) => new NodeWebSocket(url) as unknown as WebSocket,
      );
    });
    expect(closed).toBe(1000);
    const all = batches.flat();
    expect(all).toEqual([...Array.from({ length: count }, (_, i) => i), -1]);
    expect(batches.length).toBeLessThan(count / 10);
  });
});
