"""Run benchmarks: ``python -m bench [name ...]`` (default: all). ``--help`` lists them."""

import argparse
import sys

from bench import backtest, http_baseline, ingest, reconcile

BENCHMARKS = {
    "http_baseline": http_baseline.main,
    "ingest": ingest.main,
    "backtest": backtest.main,
    "reconcile": reconcile.main,
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="benchmarks to run (default: all)")
    args, rest = parser.parse_known_args()
    for name in args.names or list(BENCHMARKS):
        print(f"== {name}", flush=True)
        BENCHMARKS[name](rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
