// ANSI colours of a raw line (anser parses the escape codes; nothing hand-written).
import Anser from "anser";
import { memo } from "react";

export const AnsiText = memo(function AnsiText({ text }: { text: string }) {
  if (!text.includes("\u001b[")) return <>{text}</>;
  const parts = Anser.ansiToJson(text, { json: true, remove_empty: true, use_classes: false });
  return (
    <>
      {parts.map((part, i) => {
        const style: React.CSSProperties = {};
        if (part.fg) style.color = `rgb(${part.fg})`;
        if (part.bg) style.backgroundColor = `rgb(${part.bg})`;
        if (part.decorations.includes("bold")) style.fontWeight = "bold";
        if (part.decorations.includes("italic")) style.fontStyle = "italic";
        if (part.decorations.includes("underline")) style.textDecoration = "underline";
        return (
          <span key={i} style={style}>
            {part.content}
          </span>
        );
      })}
    </>
  );
});
