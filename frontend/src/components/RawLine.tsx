// One raw line: its permalink, a stderr marker (not colour alone), and its text as a terminal
// shows it (the last state of `\r` rewrites, ANSI colours, very long lines clipped).
import { memo } from "react";
import type { RawPayload } from "../api/types";
import { processHref } from "../router";
import { clipForDisplay, terminalView } from "../state/terminalLine";
import { AnsiText } from "./AnsiText";

export const RawLine = memo(function RawLine({
  processId,
  index,
  entry,
  highlighted,
}: {
  processId: string;
  index: number;
  entry: RawPayload;
  highlighted: boolean;
}) {
  const stderr = entry.type === "STDERR";
  const { text, hidden } = clipForDisplay(terminalView(entry.content));
  return (
    <div className={`raw-line${stderr ? " stderr" : ""}${highlighted ? " highlighted" : ""}`} aria-current={highlighted ? "true" : undefined}>
      <a className="line-number" href={processHref(processId, index)} tabIndex={-1} aria-label={`Line ${index}`}>
        {index}
      </a>
      <span className="stream-marker">{stderr ? "err" : ""}</span>
      <span className="line-text">
        <AnsiText text={text} />
        {hidden > 0 && <span className="muted"> … {hidden.toLocaleString()} more characters (see the download)</span>}
      </span>
    </div>
  );
});
