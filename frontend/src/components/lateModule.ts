// A heavy library's module loaded off the critical path: components render a plain form until
// it is in, then re-render with it. The conversation's first entries paint without waiting for
// Markdown and diff parsing code (issue 12: time to first entry < 300 ms).
import { useEffect, useSyncExternalStore } from "react";

export interface LateModule<M> {
  /** Starts loading (once). */
  preload(): Promise<void>;
  /** The module once loaded, else null; the component re-renders when it arrives. */
  useModule(): M | null;
}

export function lateModule<M>(loader: () => Promise<M>): LateModule<M> {
  let loaded: M | null = null;
  let loading: Promise<void> | null = null;
  const listeners = new Set<() => void>();
  const preload = () => {
    loading ??= loader().then(
      (module) => {
        loaded = module;
        listeners.forEach((listener) => listener());
      },
      () => {
        loading = null; // a later render tries again
      },
    );
    return loading;
  };
  const subscribe = (listener: () => void) => {
    listeners.add(listener);
    return () => listeners.delete(listener);
  };
  const snapshot = () => loaded;
  return {
    preload,
    useModule: () => {
      const module = useSyncExternalStore(subscribe, snapshot);
      useEffect(() => {
        if (module === null) void preload();
      }, [module]);
      return module;
    },
  };
}
