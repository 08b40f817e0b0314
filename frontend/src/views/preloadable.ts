// A lazily loaded view whose code can be loaded ahead of its first render. React.lazy calls its
// factory at the first render; when the code is in by then, the factory hands it over at once
// (a thenable that resolves synchronously, which React reads without suspending). Suspending
// would cost more than a tick: a Suspense boundary that showed its fallback holds the content
// back for up to 300 ms (React's fallback throttle).
import { lazy, type ComponentType } from "react";

export interface PreloadableView<P> {
  /** Starts loading the code (once); resolves when it is in. */
  load(): Promise<ComponentType<P>>;
  /** The component to render (suspends only when its code is not in yet). */
  Component: ComponentType<P>;
}

export function preloadableView<P>(loader: () => Promise<ComponentType<P>>): PreloadableView<P> {
  let loaded: ComponentType<P> | null = null;
  let loading: Promise<ComponentType<P>> | null = null;
  const load = () => {
    loading ??= loader().then((component) => {
      loaded = component;
      return component;
    });
    return loading;
  };
  const Component = lazy((): Promise<{ default: ComponentType<P> }> => {
    const ready = loaded;
    if (ready === null) return load().then((component) => ({ default: component }));
    const now = { then: (resolve: (module: { default: ComponentType<P> }) => void) => resolve({ default: ready }) };
    return now as unknown as Promise<{ default: ComponentType<P> }>;
  });
  return { load, Component: Component as unknown as ComponentType<P> };
}
