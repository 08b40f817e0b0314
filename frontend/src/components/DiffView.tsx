// A file change as a diff (DiffBody, loaded late with the `diff` library); until its code is
// in, the change's raw text.
import type { FileChange } from "../api/types";
import { lateModule } from "./lateModule";

export const diffModule = lateModule(() => import("./DiffBody"));

export function DiffView({ change }: { change: FileChange }) {
  const module = diffModule.useModule();
  if (module !== null) return <module.DiffBody change={change} />;
  const text = [change.unified_diff, change.diff, change.content].find((t) => typeof t === "string");
  return <pre className="diff hunk">{typeof text === "string" ? text : (change.action ?? "change")}</pre>;
}
