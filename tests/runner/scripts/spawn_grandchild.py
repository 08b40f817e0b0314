"""Test child: start a sleeping grandchild (same process group), print its pid, then either
sleep (``--stay``) or exit at once leaving the grandchild holding stdout (``--leave``)."""

from __future__ import annotations

import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    grandchild = subprocess.Popen(
        [sys.executable, "-c", "import time\nwhile True: time.sleep(60)"],
        stdout=None if "--leave" in argv else subprocess.DEVNULL,
    )
    sys.stdout.write(f"grandchild {grandchild.pid}\n")
    sys.stdout.flush()
    if "--leave" in argv:
        return 0
    while True:
        time.sleep(60)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
