// The shell: trades a `?token=` link for the cookie (and drops it from the address bar), loads
// the page's settings, explains how to get in without a valid cookie, then routes.
import { Suspense, useEffect, useState } from "react";
import { ApiError, fetchConfig } from "./api/client";
import type { UiConfig } from "./api/types";
import { ConfigContext } from "./config";
import { prefetchConversationStart } from "./api/conversationStart";
import { Link, parseRoute, useRoute } from "./router";
import { preloadableView } from "./views/preloadable";
import { markdownModule } from "./components/Markdown";

// One chunk per view: the raw viewer does not load the Markdown and diff libraries.
const views = {
  process: preloadableView(() => import("./views/ProcessView").then((m) => m.ProcessView)),
  session: preloadableView(() => import("./views/SessionView").then((m) => m.SessionView)),
  sessions: preloadableView(() => import("./views/SessionsView").then((m) => m.SessionsView)),
};
const ProcessView = views.process.Component;
const SessionView = views.session.Component;
const SessionsView = views.sessions.Component;

// At boot, the settings, the opened view's code and (for a conversation) its first data are
// requested at once, instead of one after the other. The first render waits for the view's
// code, so that no Suspense fallback is shown: React holds content that replaces a fallback
// back for up to 300 ms (measured: the first entry painted ~200 ms later than its data).
const bootRoute = parseRoute(window.location.pathname, window.location.search);
const bootView = bootRoute.name === "not-found" ? null : views[bootRoute.name].load();
if (bootRoute.name === "session") {
  prefetchConversationStart(bootRoute.id); // a no-op when the boot script started it
  void markdownModule.preload(); // entries paint as plain text until it is in
}
const bootConfig = fetchConfig(takeTokenFromAddressBar());

type Boot = { state: "loading" } | { state: "ready"; config: UiConfig } | { state: "unauthorized" } | { state: "error"; message: string };

function takeTokenFromAddressBar(): string | null {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (token === null) return null;
  url.searchParams.delete("token");
  window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  return token;
}

export function App() {
  const [boot, setBoot] = useState<Boot>({ state: "loading" });
  useEffect(() => {
    // The view's code only delays the start; a failure to load it shows in the route instead.
    Promise.all([bootConfig, bootView?.catch(() => undefined)]).then(
      ([config]) => setBoot({ state: "ready", config }),
      (error: unknown) => {
        if (error instanceof ApiError && error.status === 401) setBoot({ state: "unauthorized" });
        else setBoot({ state: "error", message: String(error instanceof Error ? error.message : error) });
      },
    );
  }, []);

  return (
    <>
      <header className="topbar">
        <Link href="/" className="brand">
          execlog
        </Link>
      </header>
      <main className="page">
        {boot.state === "loading" && <p role="status">Loading…</p>}
        {boot.state === "unauthorized" && <Unauthorized />}
        {boot.state === "error" && <p role="alert">The server could not be reached: {boot.message}</p>}
        {boot.state === "ready" && (
          <ConfigContext.Provider value={boot.config}>
            <Suspense fallback={<p role="status">Loading…</p>}>
              <Routes />
            </Suspense>
          </ConfigContext.Provider>
        )}
      </main>
    </>
  );
}

function Routes() {
  const route = useRoute();
  switch (route.name) {
    case "sessions":
      return <SessionsView />;
    case "session":
      return <SessionView key={route.id} sessionId={route.id} />;
    case "process":
      return <ProcessView key={`${route.id}:${route.line ?? ""}`} processId={route.id} line={route.line} />;
    default:
      return (
        <section>
          <h1>Not found</h1>
          <p>
            Nothing lives at <code>{route.path}</code>. <Link href="/">All sessions</Link>
          </p>
        </section>
      );
  }
}

function Unauthorized() {
  return (
    <section className="notice">
      <h1>Sign in with the link from the server</h1>
      <p>
        This execlog server needs its token. Open the URL that <code>execlog serve</code> printed when it
        started (it ends in <code>?token=…</code>); the page keeps the token as a cookie. The token is
        <code> EXECLOG_AUTH_TOKEN</code>, or the generated one saved in the user data directory.
      </p>
    </section>
  );
}
