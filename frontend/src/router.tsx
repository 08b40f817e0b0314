// Deep links without a router library: three routes (`/`, `/sessions/{id}`, `/processes/{id}`)
// over the History API. `navigate` pushes a URL; `Link` is a real anchor (keyboard, new tab).
import { useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent } from "react";
import { parseRoute, type Route } from "./routes";

export { parseRoute, type Route } from "./routes";

const listeners = new Set<() => void>();

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  window.addEventListener("popstate", listener);
  return () => {
    listeners.delete(listener);
    window.removeEventListener("popstate", listener);
  };
}

const snapshot = () => window.location.pathname + window.location.search;

export function navigate(url: string, replace = false): void {
  if (replace) window.history.replaceState(null, "", url);
  else window.history.pushState(null, "", url);
  listeners.forEach((listener) => listener());
}

export function useRoute(): Route {
  const url = useSyncExternalStore(subscribe, snapshot);
  const [pathname, search = ""] = url.split(/(?=\?)/);
  return parseRoute(pathname ?? "/", search);
}

export function Link({ href, onClick, ...rest }: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const follow = (event: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(event);
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    navigate(href);
  };
  return <a href={href} onClick={follow} {...rest} />;
}

export const sessionHref = (id: string) => `/sessions/${encodeURIComponent(id)}`;
export const processHref = (id: string, line?: number) =>
  `/processes/${encodeURIComponent(id)}${line === undefined ? "" : `?line=${line}`}`;
