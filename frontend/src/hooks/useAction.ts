// One way to run a user action against the server: a busy flag while it runs, and the
// server's message (in words) when it fails.
import { useCallback, useState } from "react";

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = useCallback(async (task: () => Promise<unknown>): Promise<boolean> => {
    setBusy(true);
    try {
      await task();
      setError(null);
      return true;
    } catch (e: unknown) {
      setError(errorMessage(e));
      return false;
    } finally {
      setBusy(false);
    }
  }, []);
  return { run, busy, error };
}
