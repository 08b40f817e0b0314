// The shell: trades a `?token=` link for the cookie (and drops it from the address bar), loads
// the page's settings, explains how to get in without a valid cookie, then routes.
import { lazy, Suspense, useEffect, useState } from "react";
import { ApiError, fetchConfig } from "./api/client";
import type { UiConfig } from "./api/types";
import { ConfigContext } from "./config";
import { prefetchConversationStart } from "./api/conversationStart";
import { Link, parseRoute, useRoute } from "./router";

// One chunk per view: the raw viewer does not load the Markdown and diff libraries.
const loadProcessView = () => import("./views/ProcessView").then((m) => ({ default: m.ProcessView }));
const loadSessionView = () => import("./views/SessionView").then((m) => ({ default: m.SessionView }));
const loadSessionsView = () => import("./views/SessionsView").then((m) => ({ default: m.SessionsView }));
const ProcessView = lazy(loadProcessView);
const SessionView = lazy(loadSessionView);
const SessionsView = lazy(loadSessionsView);

// At boot, the opened view's code and (for a conversation) its first data are requested at
// once, instead of one after the other behind the settings request.
const bootRoute = parseRoute(window.location.pathname, window.location.search);
if (bootRoute.name === "session") {
  void loadSessionView();
  prefetchConversationStart(bootRoute.id);
} else if (bootRoute.name === "process") {
  void loadProcessView();
} else if (bootRoute.name === "sessions") {
  void loadSessionsView();
}

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
    const token = takeTokenFromAddressBar();
    fetchConfig(token).then(
      (config) => setBoot({ state: "ready", config }),
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
