"""``python -m study.reproduce RESULTS_DIR`` (`study.reproduce.cli`): retrain configurations of a finished
study from scratch on fresh seeds (Ray tasks, GPU fractions allowed), with the study's full epoch budget,
and say what is known and what is noise.

- By default: the study's best configuration (best_config.json) on ``--seeds`` seeds.
- ``--top K``: the K best completed trials *and* both published configurations (the paper's and the
  seed report's, the study's first two trials), all on the same fresh seeds, so that they compare paired.
- ``--per-weighting-best K``: the K best trials of each weighting method (completed ones first) and both
  published configurations; each method's best is compared with the best equal (and scalarization) trial, the
  p-values adjusted by Holm's method over the comparisons of each metric.
- ``--pareto``: every trial on a multi-objective study's Pareto front, on the same fresh seeds, and which
  stay non-dominated once their 95 % intervals count (`study.front.interval_dominated`).

In every mode it also trains the single-task baselines on the same seeds, `stl_segmentation` and
`stl_depth` (the paper's One Task network in the paper's configuration, the study's trial 0, on one task
each), and gives each configuration's Delta_m against them seed by seed (`study.reproduce.tables`).

It prints its plan before Ray starts, then the runs' progress (`study.reproduce.progress`).

The best trial was picked because its seed did well, so only fresh seeds estimate how good a
configuration is: the seeds start above every seed the study used. Each run counts with its mean over
its last 10 epochs (the paper's protocol, `mtan.metrics.tail_mean`). Runs already in the folder are
continued from their checkpoints (one stopped before its first checkpoint is trained again from the
start), finished ones are kept. Writes into ``RESULTS_DIR/reproduce/``: ``<config>/seed_<s>/`` (one
`mtan` run each; config = ``trial_NNN``, `paper` / `seed_report`, or `stl_segmentation` / `stl_depth`),
``configs.csv``, ``seeds.csv``, ``summary.csv`` and ``comparisons.csv`` (docs/results.md).
"""
