"""``python -m bench [name ...] [--quick]``: run the registered benchmarks, write each result to
bench/results/<name>.json and print a summary."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

from bench import BENCHMARKS
from bench.report import RESULTS_DIR, write_result


def load_benchmarks() -> dict[str, ModuleType]:
    """The registered modules by their NAME."""
    modules: dict[str, ModuleType] = {}
    for path in BENCHMARKS:
        module = importlib.import_module(path)
        name = getattr(module, "NAME", None)
        if not isinstance(name, str) or not callable(getattr(module, "run", None)):
            raise SystemExit(f"benchmark module {path} must define NAME: str and run(quick)")
        modules[name] = module
    return modules


def main(argv: Sequence[str] | None = None) -> int:
    modules = load_benchmarks()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        metavar="name",
        help=f"benchmarks to run (default: all of {list(modules)})",
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for smoke tests")
    parser.add_argument(
        "--output-dir", type=Path, default=RESULTS_DIR, help="where the JSON results go"
    )
    options = parser.parse_args(argv)
    unknown = [name for name in options.names if name not in modules]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {list(modules)}")

    for name in options.names or list(modules):
        run: Callable[[bool], dict[str, object]] = modules[name].run
        print(f"== {name}{' (quick)' if options.quick else ''}", flush=True)
        started = time.perf_counter()
        results = run(options.quick)
        elapsed = time.perf_counter() - started
        path = write_result(name, results, quick=options.quick, directory=options.output_dir)
        print(json.dumps(results, indent=2))
        print(f"-- {name}: {elapsed:.1f}s, written to {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
