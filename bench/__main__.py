"""``python -m bench [--only NAME ...] [--quick] [--profile]``: run the benchmarks, print the ratio table, write docs.

Every benchmark runs on a private Kafka broker and PostgreSQL server started for this run (free ports, a
temporary directory) and stops every process it started, whatever happens.
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from types import FrameType, ModuleType

from bench import end_to_end, fast_path, generator, ingest, retrieval, scaling, store
from bench.harness import BenchRun, Context, load_average
from bench.profiling import PROFILE_DIR, collected
from bench.report import DOC, save, timestamp, write_doc
from bench.results import Outcome, text_table
from bench.wrk import ensure_wrk

# In the order: ingest, generator, store, end to end, retrieval, scaling, duplicate fast path.
BENCHMARKS: dict[str, ModuleType] = {module.NAME: module for module in (
    ingest, generator, store, end_to_end, retrieval, scaling, fast_path)}


def _stop_on_signal(signum: int, _: FrameType | None) -> None:
    # SIGTERM unwinds like Ctrl-C, so that the finally blocks stop every process started.
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    """Parse the command line, run the chosen benchmarks, print and record the results."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), metavar="NAME",
                        help=f"run only these: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="short and small: a smoke test, not a measurement")
    parser.add_argument("--profile", action="store_true",
                        help=f"sample the services with py-spy under load (figures then not recorded); "
                             f"collapsed stacks in {PROFILE_DIR}")
    parser.add_argument("--no-docs", action="store_true", help=f"do not update {DOC.relative_to(DOC.parents[1])}")
    parser.add_argument("--keep-files", action="store_true", help="keep the run's servers' files and logs")
    args = parser.parse_args()
    names = args.only or list(BENCHMARKS)
    signal.signal(signal.SIGTERM, _stop_on_signal)

    if ingest.NAME in names:
        ensure_wrk()  # before any server starts: installing takes a while and needs nothing of ours
    started = timestamp()
    run = BenchRun(keep_files=args.keep_files)
    ctx = Context(run=run, quick=args.quick, profile=args.profile)
    outcomes: list[Outcome] = []
    print(f"benchmarks: {', '.join(names)}{' (quick)' if args.quick else ''}; load average {load_average():.2f}; "
          f"files in {run.home}", flush=True)
    try:
        for name in names:
            load_before = load_average()
            print(f"\n== {name} (load {load_before:.2f})", flush=True)
            try:
                outcome = BENCHMARKS[name].run(ctx)
            except KeyboardInterrupt:
                raise
            except Exception as error:  # one failing benchmark must not cost the others' figures
                traceback.print_exc()
                outcome = Outcome(name, error=f"{type(error).__name__}: {error}"[:500])
            finally:
                run.stop_services()
            outcome.load = (load_before, load_average())
            outcomes.append(outcome)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping everything", file=sys.stderr)
        return 130
    finally:
        run.close()

    measures = [measure for outcome in outcomes for measure in outcome.measures]
    print("\n" + text_table(measures))
    for outcome in outcomes:
        if outcome.error:
            print(f"{outcome.benchmark}: FAILED: {outcome.error}")
    if args.profile:
        print(f"\nprofiles: {len(collected)} taken; collapsed stacks in {PROFILE_DIR}")
    elif not (args.no_docs or args.quick):
        write_doc(save(outcomes, started=started, quick=args.quick), list(BENCHMARKS))
        print(f"\nwritten: {DOC}")
    return 1 if any(outcome.error for outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
