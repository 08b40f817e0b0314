// Message text as GitHub-flavoured Markdown; raw HTML is not rendered (react-markdown's default).
// Loaded late (Markdown.tsx).
import ReactMarkdown from "react-markdown";
import remarkGfm from "remark-gfm";

const plugins = [remarkGfm];

export function MarkdownBody({ text }: { text: string }) {
  return (
    <div className="markdown">
      <ReactMarkdown remarkPlugins={plugins}>{text}</ReactMarkdown>
    </div>
  );
}
