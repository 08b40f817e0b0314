"""Test child: write what the arguments say, then exit with a code.

Usage: emit.py [--exit N] [--ignore-term] [--sleep] ACTION...
ACTION is ``out:TEXT`` / ``err:TEXT`` (a line), ``rawhex:HEX`` (bytes to stdout, flushed alone),
``echo-stdin`` (copy stdin lines to stdout until EOF).
"""

from __future__ import annotations

import signal
import sys
import time


def main(argv: list[str]) -> int:
    code = 0
    ignore_term = False
    sleep_forever = False
    actions: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--exit":
            code = int(next(args))
        elif arg == "--ignore-term":
            ignore_term = True
        elif arg == "--sleep":
            sleep_forever = True
        else:
            actions.append(arg)
    if ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for action in actions:
        kind, _, value = action.partition(":")
        if kind == "out":
            sys.stdout.write(value + "\n")
            sys.stdout.flush()
        elif kind == "err":
            sys.stderr.write(value + "\n")
            sys.stderr.flush()
        elif kind == "rawhex":
            sys.stdout.buffer.write(bytes.fromhex(value))
            sys.stdout.buffer.flush()
        elif kind == "echo-stdin":
            for line in sys.stdin:
                sys.stdout.write("echo " + line)
                sys.stdout.flush()
    if sleep_forever:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        while True:
            time.sleep(60)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
