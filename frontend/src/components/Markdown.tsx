// Message text as Markdown (MarkdownBody, loaded late); until its code is in, the plain text
// with its line breaks.
import { lateModule } from "./lateModule";

export const markdownModule = lateModule(() => import("./MarkdownBody"));

export function Markdown({ text }: { text: string }) {
  const module = markdownModule.useModule();
  if (module === null) {
    return (
      <div className="markdown">
        <p className="plain-text">{text}</p>
      </div>
    );
  }
  return <module.MarkdownBody text={text} />;
}
