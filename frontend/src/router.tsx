// Deep links without a router library: three routes (`/`, `/sessions/{id}`, `/processes/{id}`)
// over the History API. `navigate` pushes a URL; `Link` is a real anchor (keyboard, new tab).
import { useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent } from "react";

export type Route =
  | { name: "sessions" }
  | { name: "session"; id: string }
  | { name: "process"; id: string; line: number | null }
  | { name: "not-found"; path: string };

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

export function parseRoute(pathname: string, search: string): Route {
  const session = /^\/sessions\/([^/]+)\/?$/.exec(pathname);
  if (session) return { name: "session", id: decodeURIComponent(session[1] as string) };
  const process = /^\/processes\/([^/]+)\/?$/.exec(pathname);
  if (process) {
    const line = new URLSearchParams(search).get("line");
    const parsed = line !== null && /^\d+$/.test(line) ? Number(line) : null;
    return { name: "process", id: decodeURIComponent(process[1] as string), line: parsed };
  }
  if (pathname === "/" || pathname === "") return { name: "sessions" };
  return { name: "not-found", path: pathname };
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
