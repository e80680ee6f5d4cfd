"""Run every benchmark in this folder, one after the other.

    python benchmarks/run_all.py [--quick] [--data DATA_DIR]

Benchmarks that need the PBC folder (``bench_tta_accuracy.py``) run only
when ``--data`` is given.
"""

import argparse
import runpy
import sys
from pathlib import Path

NEEDS_DATA = {"bench_tta_accuracy.py", "bench_load_pbc.py"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data", help="PBC folder for data-dependent benchmarks")
    args = parser.parse_args(argv)
    for script in sorted(Path(__file__).parent.glob("bench_*.py")):
        if script.name in NEEDS_DATA and not args.data:
            print(f"== {script.name}: skipped (needs --data)\n")
            continue
        print(f"== {script.name}")
        sys.argv = [str(script)] + ([args.data] if script.name in NEEDS_DATA else [])
        sys.argv += ["--quick"] if args.quick else []
        runpy.run_path(str(script), run_name="__main__")
        print()


if __name__ == "__main__":
    main()
