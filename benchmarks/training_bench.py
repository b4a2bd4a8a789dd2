"""Time model training on a materialized lake (default: the paper-size demo of `make demo-paper`).

Reads the lake's training tables, runs `pov_pipeline.models.run_experiment` with the default
`TrainConfig` on both protocols, and prints the wall time per protocol and model and the headline
accuracies. The issue's budget: everything at paper size in at most 15 minutes on 2 CPU cores.

    .venv/bin/python benchmarks/training_bench.py [--lake build/paper_lake] [--n-boot 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lake", default=str(ROOT / "build" / "paper_lake"))
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args(argv)

    from pov_pipeline.lake import LakePaths, read_table
    from pov_pipeline.models import TrainConfig, run_experiment

    paths = LakePaths(Path(args.lake))
    needed = ["training_examples", "splits", "aois", "stimuli", "text_features", "image_features"]
    if not all(paths.table_dir(t).exists() for t in needed):
        print(
            f"{paths.root} has no training tables: run `make demo-paper` first (or pass --lake)",
            file=sys.stderr,
        )
        return 2
    tables = {
        name: read_table(paths, name).to_pandas()
        for name in [*needed, "truth_trials"]
        if paths.table_dir(name).exists()
    }
    examples, splits = tables["training_examples"], tables["splits"]
    n_folds = int(splits["fold"].max()) + 1
    print(
        f"lake {paths.root}: {examples['participant'].nunique()} participants, "
        f"{examples['stimulus_id'].nunique()} stimuli, {len(examples):,} trials, "
        f"{n_folds} folds × 2 protocols"
    )
    started = time.perf_counter()
    result = run_experiment(
        examples,
        splits,
        tables["aois"],
        tables["text_features"],
        tables["image_features"],
        config=TrainConfig(n_folds=n_folds),
        stimuli=tables["stimuli"],
        truth_trials=tables.get("truth_trials"),
        n_boot=args.n_boot,
        progress=None,
    )
    seconds = time.perf_counter() - started
    log = result.training_log
    if len(log):
        per_model = log.groupby(["protocol", "model"])["seconds"].sum().unstack(0).round(1)
        print("\nfit seconds (sum over folds):")
        print(per_model.to_string())
    accuracy = result.metrics[result.metrics["metric"] == "accuracy"].pivot(
        index="model", columns="protocol", values="value"
    )
    print("\naccuracy:")
    print(accuracy.round(4).to_string())
    print(
        f"\ntotal training + evaluation: {seconds:.1f} s (budget 900 s) -> "
        f"{'met' if seconds <= 900 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
