// The page's first script, inlined into index.html by the build (vite.config.ts): a deep link to
// a conversation starts fetching its first data while the app's code downloads and starts, not
// after (issue 12: time to first entry < 300 ms). The app takes the requests over through
// prefetchConversationStart's store. A `?token=` link is left to the app, which trades the token
// for the cookie first.
import { prefetchConversationStart } from "./api/conversationStart";
import { parseRoute } from "./routes";

const route = parseRoute(window.location.pathname, window.location.search);
if (route.name === "session" && !new URLSearchParams(window.location.search).has("token")) {
  prefetchConversationStart(route.id);
}
