"""The ``leukosk`` command line (thin: it parses arguments and calls the library)."""

import argparse
import sys

__all__ = ["main"]


def _demo(args):
    from ._demo import format_demo_report, run_demo

    result = run_demo(args.out, image_size=args.image_size,
                      max_epochs=args.epochs, random_state=args.seed,
                      device=args.device, verbose=0 if args.quiet else 1)
    print(format_demo_report(result))
    return 0


def build_parser():
    """The argument parser of the ``leukosk`` command."""
    parser = argparse.ArgumentParser(
        prog="leukosk",
        description="Leukocyte image classification (VGG-19 transfer "
                    "learning, scikit-learn API).")
    from . import __version__

    parser.add_argument("--version", action="version",
                        version=f"leukosk {__version__}")
    commands = parser.add_subparsers(dest="command", required=True,
                                     metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="train a small model on the bundled PBC sample",
        description="Train a small VGG-19-BN from scratch on the 160 bundled PBC "
                    "images (about a minute on 2 CPU cores), print the test "
                    "accuracy and write a confusion-matrix PNG.")
    demo.add_argument("--out", default="leukosk-demo",
                      help="output folder (default: %(default)s)")
    demo.add_argument("--epochs", type=int, default=20,
                      help="training epochs (default: %(default)s)")
    demo.add_argument("--image-size", type=int, default=32,
                      help="image side in pixels (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0,
                      help="random seed (default: %(default)s)")
    demo.add_argument("--device", default="auto",
                      help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    demo.add_argument("--quiet", action="store_true",
                      help="no per-epoch log or progress bar")
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None):
    """Entry point of the ``leukosk`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, ImportError, RuntimeError) as exc:
        print(f"leukosk {args.command}: error: {exc}", file=sys.stderr)
        return 1
