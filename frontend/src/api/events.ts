// The session event stream (`GET /api/events`, server-sent events). EventSource reconnects by
// itself; events missed while away are covered by a `resync` handed to the subscriber.
import type { SessionEvent } from "./types";

export function subscribeSessionEvents(onEvent: (event: SessionEvent) => void): () => void {
  const source = new EventSource("/api/events", { withCredentials: true });
  let wasOpen = false;
  source.onopen = () => {
    if (wasOpen) onEvent({ type: "resync" });
    wasOpen = true;
  };
  source.onmessage = (message: MessageEvent<string>) => {
    onEvent(JSON.parse(message.data) as SessionEvent);
  };
  return () => source.close();
}
