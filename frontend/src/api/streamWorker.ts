// The stream worker: every v2 log stream's WebSocket lives here, off the page's main thread,
// which then receives one message per batch of frames (see framePump.ts) and keeps its time
// for painting. Owned by socketRelay.ts; one worker serves all the page's streams.
import { FramePump, type PumpEvent } from "./framePump";

export type WorkerRequest = { op: "open"; id: number; url: string } | { op: "close"; id: number };
export type WorkerReply = PumpEvent & { id: number };

const pumps = new Map<number, FramePump>();
const scope = self as unknown as {
  postMessage: (reply: WorkerReply) => void;
  onmessage: ((event: MessageEvent<WorkerRequest>) => void) | null;
};

scope.onmessage = (event) => {
  const request = event.data;
  if (request.op === "open") {
    const pump = new FramePump(
      request.url,
      (reply) => {
        if (reply.kind === "close") pumps.delete(request.id);
        scope.postMessage({ ...reply, id: request.id });
      },
      (url) => new WebSocket(url),
    );
    pumps.set(request.id, pump);
  } else {
    pumps.get(request.id)?.close();
    pumps.delete(request.id);
  }
};
