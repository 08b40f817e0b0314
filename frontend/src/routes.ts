// The routes of the page, parsed without React: the boot script (src/boot.ts) reads them too.
export type Route =
  | { name: "sessions" }
  | { name: "session"; id: string }
  | { name: "process"; id: string; line: number | null }
  | { name: "not-found"; path: string };

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

