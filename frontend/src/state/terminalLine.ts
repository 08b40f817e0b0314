// What a terminal shows for a line rewritten with carriage returns (progress bars): each `\r`
// returns to column 0 and the following text overwrites, so only the last state is displayed.
// The stored line and the download keep every byte.

export function terminalView(content: string): string {
  if (!content.includes("\r")) return content;
  let screen = "";
  for (const segment of content.split("\r")) {
    screen = segment + screen.slice(segment.length);
  }
  return screen;
}

/** Display cap for one line: a megabyte-long line is cut, with a note of how much is hidden. */
export const DISPLAY_LINE_CHARS = 4000;

export function clipForDisplay(text: string): { text: string; hidden: number } {
  if (text.length <= DISPLAY_LINE_CHARS) return { text, hidden: 0 };
  return { text: text.slice(0, DISPLAY_LINE_CHARS), hidden: text.length - DISPLAY_LINE_CHARS };
}
