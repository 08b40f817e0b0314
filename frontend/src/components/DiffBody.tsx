// A file change as a unified diff (parsed by the `diff` library), or a written file's content.
import { parsePatch } from "diff";
import type { FileChange } from "../api/types";

export function DiffBody({ change }: { change: FileChange }) {
  const patchText = typeof change.unified_diff === "string" ? change.unified_diff : typeof change.diff === "string" ? change.diff : null;
  if (patchText !== null) {
    const patches = parsePatch(patchText);
    return (
      <div className="diff">
        {patches.flatMap((patch, p) =>
          patch.hunks.map((hunk, h) => (
            <pre key={`${p}:${h}`} className="hunk">
              <span className="hunk-header">
                @@ -{hunk.oldStart},{hunk.oldLines} +{hunk.newStart},{hunk.newLines} @@
              </span>
              {hunk.lines.map((line, i) => (
                <span key={i} className={line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "ctx"}>
                  {line}
                </span>
              ))}
            </pre>
          )),
        )}
      </div>
    );
  }
  if (typeof change.content === "string") {
    return (
      <pre className="diff hunk">
        {change.content.split("\n").map((line, i) => (
          <span key={i} className="add">
            +{line}
          </span>
        ))}
      </pre>
    );
  }
  return <p className="muted">{change.action ?? "change"}</p>;
}
