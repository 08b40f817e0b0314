// Opens a stream's socket in the stream worker when the platform has workers (the browser),
// else on this thread (tests under Node): either way the owner gets the same batched events.
import { FramePump, type PumpEvent } from "./framePump";
import type { WorkerReply, WorkerRequest } from "./streamWorker";

export interface RelayedSocket {
  close(): void;
}

let worker: Worker | null = null;
let nextId = 1;
const listeners = new Map<number, (event: PumpEvent) => void>();

function streamWorker(): Worker {
  if (worker === null) {
    worker = new Worker(new URL("./streamWorker.ts", import.meta.url), { type: "module" });
    worker.onmessage = (event: MessageEvent<WorkerReply>) => {
      const { id, ...reply } = event.data;
      listeners.get(id)?.(reply as PumpEvent);
      if (reply.kind === "close") listeners.delete(id);
    };
  }
  return worker;
}

export function openRelayedSocket<P>(url: string, emit: (event: PumpEvent<P>) => void): RelayedSocket {
  if (typeof Worker === "undefined") {
    const pump = new FramePump<P>(url, emit, (u) => new WebSocket(u));
    return { close: () => pump.close() };
  }
  const id = nextId++;
  const target = streamWorker();
  listeners.set(id, emit as (event: PumpEvent) => void);
  target.postMessage({ op: "open", id, url } satisfies WorkerRequest);
  return {
    close: () => {
      listeners.delete(id);
      target.postMessage({ op: "close", id } satisfies WorkerRequest);
    },
  };
}
