"""``python -m tools.chaos``: a chaos run with its own servers; exit 1 when anything was lost or doubled."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from tools.chaos.poison import KINDS as POISON_KINDS
from tools.chaos.report import markdown, text_table
from tools.chaos.run import ChaosParameters, run_chaos


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    defaults = ChaosParameters()
    parser = argparse.ArgumentParser(prog="python -m tools.chaos", description=__doc__)
    parser.add_argument("--feedbacks", type=int, default=defaults.feedbacks, help="feedbacks to send in total")
    parser.add_argument("--kills", type=int, default=defaults.kills, help="kill -9s of generators and stores")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the schedule and the feedback mix")
    parser.add_argument("--rate", type=float, default=defaults.rate, help="steady feedbacks per second")
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency, help="requests in flight at most")
    parser.add_argument("--poison-copies", type=int, default=defaults.poison_copies,
                        help="records of each kind of poison (0: none)")
    parser.add_argument("--poison-kinds", default=",".join(POISON_KINDS),
                        help=f"comma-separated kinds of poison (default: all of {', '.join(POISON_KINDS)})")
    parser.add_argument("--burst", type=int, default=defaults.burst, help="feedbacks per throughput probe")
    parser.add_argument("--no-scaling", action="store_true", help="one generator throughout, no probes")
    parser.add_argument("--stores", type=int, default=defaults.stores, help="policy-store processes")
    parser.add_argument("--keep", action="store_true", help="keep logs and data even when the run passes")
    parser.add_argument("--report", type=Path, help="write the figures as markdown to this file (docs/chaos.md)")
    return parser.parse_args(argv)


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(kind.strip() for kind in text.split(",") if kind.strip())
    unknown = set(kinds) - set(POISON_KINDS)
    if unknown:
        raise SystemExit(f"unknown poison kinds: {', '.join(sorted(unknown))}")
    return kinds


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write the report; 0 only when every check passed."""
    args = parse(argv)
    parameters = ChaosParameters(feedbacks=args.feedbacks, kills=args.kills, seed=args.seed, rate=args.rate,
                                 concurrency=args.concurrency, poison_copies=args.poison_copies,
                                 poison_kinds=_kinds(args.poison_kinds), burst=args.burst,
                                 scaling=not args.no_scaling, probes=not args.no_scaling, stores=args.stores,
                                 keep_files=args.keep)
    result = run_chaos(parameters)
    print()
    print(text_table(result))
    if args.report:
        command = "python -m tools.chaos " + shlex.join(sys.argv[1:] if argv is None else argv)
        args.report.write_text(markdown(result, command.strip()))
        print(f"report written to {args.report}")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
