// Joins the session event stream to a component; the handler may change between renders.
import { useEffect, useRef } from "react";
import { subscribeSessionEvents } from "../api/events";
import type { SessionEvent } from "../api/types";

export function useSessionEvents(onEvent: (event: SessionEvent) => void): void {
  const handler = useRef(onEvent);
  useEffect(() => {
    handler.current = onEvent;
  });
  useEffect(() => subscribeSessionEvents((event) => handler.current(event)), []);
}
