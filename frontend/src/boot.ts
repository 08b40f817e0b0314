// The page's first script, inlined into index.html by the build (vite.config.ts): a deep link to
// a conversation starts fetching its first data while the app's code downloads and starts, not
// after (issue 12: time to first entry < 300 ms); so does the view's code. The app takes the requests over through
// prefetchConversationStart's store. A `?token=` link is left to the app, which trades the token
// for the cookie first.
import { prefetchConversationStart } from "./api/conversationStart";
import { parseRoute, type Route } from "./routes";

/** The chunks of each route's view (set by the build, vite.config.ts). */
declare const __EXECLOG_VIEW_CHUNKS__: Partial<Record<Route["name"], string[]>>;

const route = parseRoute(window.location.pathname, window.location.search);
if (route.name === "session" && !new URLSearchParams(window.location.search).has("token")) {
  prefetchConversationStart(route.id);
}
// The view's code is requested now too, not once the app's bundle has run and asks for it.
for (const file of __EXECLOG_VIEW_CHUNKS__[route.name] ?? []) {
  const link = document.createElement("link");
  link.rel = "modulepreload";
  link.href = file;
  document.head.append(link);
}
