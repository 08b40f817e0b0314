"""Test child: write the bytes of a file to stdout in pieces of the given sizes, flushing
after each, so the reader sees exactly those chunk boundaries (or fewer, merged)."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    with open(argv[0], "rb") as source:
        data = source.read()
    sizes = [int(size) for size in argv[1:]] or [len(data)]
    position = 0
    index = 0
    out = sys.stdout.buffer
    while position < len(data):
        size = sizes[index % len(sizes)]
        out.write(data[position : position + size])
        out.flush()
        position += size
        index += 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
