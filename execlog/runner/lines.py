"""Split a child's output byte chunks into text lines, bounded in memory.

Lines end at ``\\n`` (a trailing ``\\r`` is dropped), decode as UTF-8 with replacement, and a line
longer than ``max_line_bytes`` comes out as several pieces cut at character boundaries — never
dropped (CONTRACT.md, ``EXECLOG_MAX_LINE_BYTES``). The work is done by ``bytes`` methods in C.
The unterminated tail can be previewed (``pending_text``) so a line still being written, such as a
``\\r`` progress bar, is visible live before its newline (issue 9, "Live partial lines").
"""

from __future__ import annotations

__all__ = ["LineSplitter"]

_CONTINUATION_MASK = 0xC0
_CONTINUATION_BITS = 0x80


class LineSplitter:
    """Incremental splitter: ``feed`` chunks, ``finish`` once at end of stream."""

    __slots__ = ("_limit", "_pending")

    def __init__(self, max_line_bytes: int) -> None:
        if max_line_bytes < 4:
            # A piece must be able to hold one whole UTF-8 character.
            raise ValueError("max_line_bytes must be at least 4")
        self._limit = max_line_bytes
        # The unterminated tail; at most ``limit + 1`` bytes between calls (``limit`` bytes of
        # content plus a ``\r`` that may turn out to be half of a ``\r\n``).
        self._pending = bytearray()

    @property
    def idle(self) -> bool:
        """No partial line is pending: the next chunk starts a new line."""
        return not self._pending

    def feed(self, chunk: bytes) -> list[str]:
        """The lines that ``chunk`` completes, in order."""
        newline = chunk.rfind(b"\n")
        if newline < 0:
            self._pending += chunk
            return self._cut_long_pending()
        if self._pending:
            self._pending += chunk[:newline]
            complete: bytes = bytes(self._pending)
        else:
            complete = chunk[:newline]
        self._pending = bytearray(chunk[newline + 1 :])
        lines = self._split_complete(complete)
        if len(self._pending) > self._limit + 1:
            lines.extend(self._cut_long_pending())
        return lines

    @property
    def pending_bytes(self) -> int:
        """Bytes of the unterminated tail: at most ``max_line_bytes + 1`` between calls."""
        return len(self._pending)

    def pending_text(self) -> str:
        """The unterminated tail as the line it would be if it ended now: a trailing ``\\r`` and
        an incomplete trailing UTF-8 character (the rest is still in the pipe) are left out."""
        pending = self._pending
        end = len(pending)
        if end and pending[end - 1] == 0x0D:
            end -= 1
        end = _complete_prefix_end(pending, end)
        return pending[:end].decode("utf-8", "replace")

    def finish(self) -> list[str]:
        """The trailing partial line, if any (the stream ended without a final newline)."""
        if not self._pending:
            return []
        tail = bytes(self._pending)
        self._pending = bytearray()
        if tail.endswith(b"\r"):
            tail = tail[:-1]
        return self._split_line(tail)

    def _split_complete(self, complete: bytes) -> list[str]:
        """Lines of ``complete`` (newline-separated, last one unterminated in the buffer)."""
        # Fast path: one decode and one split for the whole block. ``\n`` is ASCII, so it never
        # belongs to an invalid sequence: decoding the block equals decoding line by line.
        text = complete.decode("utf-8", "replace")
        lines = text.split("\n")
        if "\r" in text:
            lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        # A line of n characters came from at most 4n bytes: only then can it be too long.
        if len(complete) > self._limit and max(map(len, lines)) * 4 > self._limit:
            return self._split_complete_exactly(complete)
        return lines

    def _split_complete_exactly(self, complete: bytes) -> list[str]:
        lines: list[str] = []
        for raw in complete.split(b"\n"):
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            lines.extend(self._split_line(raw))
        return lines

    def _split_line(self, raw: bytes) -> list[str]:
        """One complete line (without its ending), cut into pieces of at most ``limit`` bytes."""
        limit = self._limit
        if len(raw) <= limit:
            return [raw.decode("utf-8", "replace")]
        pieces: list[str] = []
        start = 0
        while len(raw) - start > limit:
            end = _find_cut(raw, start, limit)
            pieces.append(raw[start:end].decode("utf-8", "replace"))
            start = end
        pieces.append(raw[start:].decode("utf-8", "replace"))
        return pieces

    def _cut_long_pending(self) -> list[str]:
        """Emit leading pieces of an unterminated line that is certainly longer than the limit.

        With ``limit + 2`` bytes pending the content exceeds ``limit`` whatever comes next (at
        most one trailing ``\\r`` is dropped), so the first piece is the same one that splitting
        the whole line would give: the output does not depend on how the input was chunked.
        """
        pending = self._pending
        limit = self._limit
        if len(pending) < limit + 2:
            return []
        pieces: list[str] = []
        start = 0
        while len(pending) - start >= limit + 2:
            end = _find_cut(pending, start, limit)
            pieces.append(pending[start:end].decode("utf-8", "replace"))
            start = end
        del pending[:start]
        return pieces


def _complete_prefix_end(data: bytearray, end: int) -> int:
    """``end``, moved back before a UTF-8 character that starts but does not complete there."""
    for back in (1, 2, 3):
        position = end - back
        if position < 0:
            break
        byte = data[position]
        if byte & _CONTINUATION_MASK == _CONTINUATION_BITS:
            continue  # a continuation byte: its lead is further back
        if byte >= 0xC0:
            # A lead byte: 110xxxxx needs 2 bytes, 1110xxxx 3, 11110xxx 4.
            needed = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return position if back < needed else end
        return end
    return end


def _find_cut(data: bytes | bytearray, start: int, limit: int) -> int:
    """End of the longest piece from ``start`` of at most ``limit`` bytes that does not split a
    UTF-8 character (``data`` must extend past ``start + limit``)."""
    end = start + limit
    if data[end] & _CONTINUATION_MASK != _CONTINUATION_BITS:
        return end
    # ``data[end]`` continues a character: its lead byte is at most 3 bytes back.
    for back in (1, 2, 3):
        if data[end - back] & _CONTINUATION_MASK != _CONTINUATION_BITS:
            cut = end - back
            return cut if cut > start else end
    return end  # not valid UTF-8 here: any cut is as good as another
