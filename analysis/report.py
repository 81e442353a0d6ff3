"""`python -m analysis.report RESULTS_DIR [--out DIR]`: the comparison report of a study.

Writes `report.md`, a self-contained `report.html` and the figures as PNG beside them (default
`RESULTS_DIR/report/`). A directory that is missing or is not a study is one line and exit code 2.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from analysis import plots, tables
from analysis.answer import (
    NEEDS_SINGLE_TASK,
    NOT_ANSWERED,
    answer_caption,
    answer_sentence,
    answer_table,
    has_delta_m,
    not_retrained,
    study_budget,
    study_weightings,
)
from analysis.columns import label
from analysis.common_epoch import (
    common_epoch,
    common_epoch_sentence,
    compared_trials,
    same_number_of_trials,
    trials_at_epoch,
    trials_per_weighting,
    weightings_at_epoch,
)
from analysis.confirmation import (
    Confirmation,
    comparison_sentences,
    method_comparisons,
    ranking_table,
    read_confirmation,
    single_task_configs,
    winners_curse,
)
from analysis.load import StudyResults, load_optuna_study, load_results
from analysis.optuna_study import Importance, param_importances
from analysis.predictions import PREDICTIONS_FILE, prediction_panel
from analysis.published import DEFAULT_DELTA_M_ROW, REFERENCES, reference, table_rows
from analysis.render import Banner, Block, Bullets, Figure, Heading, Paragraph, Table, to_html, to_markdown
from analysis.space import RecordedSpace
from mtan.cli import command_parser
from mtan.errors import UserError, run_cli
from mtan.files import atomic_write_text
from mtan.metrics import METRICS
from study.front import interval_dominated, reference_point
from study.record import COMPLETED, FAILED, PARETO_COLUMN, PARETO_ROLE, StudyFolder, most_common_error
from study.reproduce.stats import SIGNIFICANCE

FIGURE_FILES: dict[str, str] = {
    "weighting": "fig_weightings.png",
    "hyperparameters": "fig_metrics_vs_hyperparameters.png",
    "curves": "fig_learning_curves.png",
    "importance": "fig_importance.png",
    "tradeoff": "fig_tradeoff.png",
    "weights": "fig_task_weights.png",
}
# The figures only a study of several objectives has.
FRONT_FIGURE_FILES: dict[str, str] = {"hypervolume": "fig_hypervolume.png"}
FIGURE_TITLES: dict[str, str] = {
    "weighting": "Metrics per weighting method at one epoch",
    "hyperparameters": "Final metrics against each hyperparameter",
    "curves": "Learning curves with ASHA stopping points",
    "importance": "Hyperparameter importance",
    "tradeoff": "The trade-off between the tasks with the Pareto front",
    "hypervolume": "Hypervolume of the front against trials completed",
    "weights": "Task weights over the epochs",
}
# The confirmation's single-task runs (`analysis.confirmation.single_task_configs`) are reference lines on
# the trade-off figure when present.
SINGLE_TASK_LINES = (
    "grey lines: the single-task networks on fresh seeds where retrained (dashed: segmentation, "
    "dash-dotted: depth)"
)
UNITS_NOTE = (
    "Values in the results files are fractions; this report shows mIoU and pixel accuracy in percent, "
    "depth abs err in the data's units (inverse depth), and depth rel err as a plain ratio, each with its "
    "convention."
)
NOT_REPRODUCED = (
    "Not reproduced yet: `python -m study.reproduce RESULTS_DIR` retrains the best config with several seeds "
    "and gives the mean ± std this report then shows."
)
NOT_CONFIRMED = (
    "Not confirmed yet: `python -m study.reproduce RESULTS_DIR --per-weighting-best 1` (the best of each "
    "weighting method) or `--top 3` (the study's 3 best) retrains them and both published configurations "
    "on the same fresh seeds and gives the confirmed ranking, with 95 % intervals and paired comparisons, "
    "this section then shows."
)
COMPARISON_CAPTION = (
    "Each number sits under the convention its source used; '-' where the source used the other one. '?' "
    "marks a number whose convention the source does not state. The score is this study's objective (0 = "
    "trivial predictors, 1 = perfect); the trivial predictors (majority class everywhere, mean depth "
    "everywhere) show what no learning gets on this study's data."
)
CONVENTION_NOTES = (
    "mIoU: accumulated = one confusion matrix over the validation set, void excluded; paper 2019 = the "
    "official code of 2019: per image the IoU over the classes present, with void pixels predicted as a "
    "class counted in its union, averaged per evaluation batch, then over batches (several points lower); "
    "2020 = the same with void masked out (the official fix of July 2020).",
    "Depth errors over valid pixels: per-pixel mean over the whole split, or the mean of per-batch means "
    "(the official code). Rel err is a plain ratio: the paper's 33.63 is not a percentage.",
    "This study's rows are the last epoch of one run; the published rows average the last 10 epochs.",
)
SYNTHETIC_WARNING = (
    "This study ran on the synthetic data set (generated, not CityScapes). Its numbers are not comparable "
    "with the CityScapes numbers of the paper, the seed report or the single-task baseline; they stand side "
    "by side below only to show the protocol, and their Delta_m against a published row is not computed."
)
SYNTHETIC_NUMBERS = "Synthetic data (generated, not CityScapes): these numbers say nothing about CityScapes."
DEFER_TO_CONFIRMATION = (
    "These are the study's single runs, one seed each. The confirmation on fresh seeds (above) is what "
    "says which method is better; where the two disagree, it holds."
)


@dataclass(frozen=True)
class ReportFiles:
    """What `write_report` wrote, and the note at its top when every trial failed."""

    markdown: Path
    html: Path
    figures: tuple[Path, ...]
    all_failed: str | None = None


def all_failed_note(trials: pd.DataFrame) -> str:
    """The report's first words when every trial failed: that there is no result, and the most common
    reason (results.csv's ``error``)."""
    reason, count = most_common_error(trials) or ("no reason recorded", len(trials))
    return (
        f"every one of the {len(trials)} trials failed: there is no result to compare, and no figure. The "
        f"most common reason ({count} of {len(trials)}): {reason}"
    )


def _config_text(row: Mapping[str, Any], space: RecordedSpace) -> str:
    parts = []
    for name in space.names:
        text = tables.format_hyperparameter(name, row.get(name))
        if text != "-":
            parts.append(f"{space.label(name)} {text}")
    return ", ".join(parts)


def _epochs(count: float) -> str:
    return f"{count:.0f} epoch" + ("" if count == 1 else "s")


class _Report:
    """Builds the report's blocks and figures for one study."""

    def __init__(self, results: StudyResults, out: Path, delta_m_row: str) -> None:
        self.results, self.out = results, out
        self.delta_m_row = reference(delta_m_row)
        self.study = results.study
        self.trials = results.trials
        self.metric = str(self.study.get("metric") or (results.best or {}).get("metric") or "score")
        self.mode = str(self.study.get("mode") or (results.best or {}).get("mode") or "max")
        self.column = tables.ranking_column(self.trials, self.metric, results.best)
        self.ranked = tables.ranked_trials(self.trials, self.column, self.mode)
        self.synthetic = tables.is_synthetic(self.study)
        self.figures: list[Path] = []
        self.best_row = self._best_row()
        self.optuna_study, self.optuna_error = self._optuna()
        self.names: dict[int, str] = dict(
            zip(self.trials["trial"].astype(int), tables.trial_names(self.trials), strict=True)
        )
        self.confirmation: Confirmation | None = read_confirmation(StudyFolder(results.path))
        self.epoch = common_epoch(self.trials)
        best_trial = (results.best or {}).get("trial")
        self.best_trial = None if best_trial is None else int(best_trial)
        self.budget = study_budget(self.study, self.trials)
        self.weightings = study_weightings(self.study, results.space)
        self.same_trials = same_number_of_trials(self.trials)
        # the comparisons between methods' best configurations in the confirmation (none without one)
        self.compared = method_comparisons(self.confirmation) if self.confirmation is not None else []
        self.objectives: tuple[str, ...] = tuple(self.study.get("objectives") or ())
        # the confirmation's summary.csv rows of its configurations other than the single-task runs, and
        # which of them another's intervals dominate in every objective: the figure's hollow crosses and the
        # front's confirmation, as study.reproduce prints it
        self.multi_task = self._multi_task_summary()
        self.dominated: dict[str, list[str]] = (
            interval_dominated(self.multi_task, self.objectives) if self.objectives else {}
        )

    def _best_row(self) -> pd.Series | None:
        best = (self.results.best or {}).get("trial")
        rows = self.trials.loc[self.trials["trial"] == best] if best is not None else self.trials[:0]
        if len(rows) == 1:
            return rows.iloc[0]
        return self.ranked.iloc[0] if len(self.ranked) else None

    def _multi_task_summary(self) -> pd.DataFrame:
        """The confirmation's summary.csv rows of its configurations other than the single-task runs."""
        if self.confirmation is None:
            return pd.DataFrame(columns=["config", "metric", "mean", "ci_low", "ci_high", "n"])
        summary = self.confirmation.summary
        single = set(single_task_configs(self.confirmation).values())
        return summary.loc[~summary["config"].isin(single)]

    def _optuna(self) -> tuple[Any | None, str]:
        if self.results.journal is None:
            return None, "no optuna.journal in the results directory"
        try:
            return load_optuna_study(self.results.journal, self.results.name), ""
        except UserError as error:
            return None, str(error)

    def _figure(self, key: str, fig: Any, caption: str) -> Figure | None:
        if fig is None:
            return None
        if self.synthetic:
            plots.draw_warning(fig)
        path = plots.save_figure(fig, self.out / {**FIGURE_FILES, **FRONT_FIGURE_FILES}[key])
        self.figures.append(path)
        return Figure(path, caption, FIGURE_TITLES[key])

    # ------------------------------------------------------------ sections

    def header(self) -> list[Block]:
        blocks: list[Block] = [
            Heading(1, f"MTAN study report: {self.results.name}"),
            Paragraph(
                f"Results directory {self.results.path}; report written "
                f"{dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}. {UNITS_NOTE}"
            ),
        ]
        counts = tables.state_counts(self.trials)
        if self.trials.empty:
            blocks.append(
                Banner("results.csv lists no trial: the study ran none, or was stopped before any.")
            )
        elif counts.get("failed", 0) == len(self.trials):
            blocks.append(Banner(all_failed_note(self.trials)))
        elif counts.get("failed", 0):
            blocks.append(
                Banner(f"{counts['failed']} of {len(self.trials)} trials failed (listed in the summary).")
            )
        if self.synthetic:
            blocks.append(Banner(SYNTHETIC_WARNING))
        blocks += [Heading(2, "Key findings"), Bullets(tuple(self.findings()))]
        return blocks

    def findings(self) -> list[str]:
        """The answer first, then what the study's single runs show. The answer is the confirmation's
        comparison of methods, in words; a study of several objectives leads with its front and whether
        the front held on fresh seeds, and gives the comparison only where the confirmation made one."""
        if self.objectives:
            items = [self.front_sentence(), self.front_confirmation_text()]
            items += [self.answer_sentence()] if self.compared else []
        else:
            items = [self.answer_sentence()]
        if self.best_row is None:
            return items + ["No trial finished, so there is no best configuration."]
        if self.confirmation is not None:
            curse = winners_curse(self.confirmation, self.metric, self.best_trial)
            if curse:
                items.append(curse)
        row = self.best_row
        items.append(
            f"Best trial {self.names[int(row['trial'])]}: "
            f"{_config_text(row, self.results.space)}; {label(self.metric)} "
            f"{tables.format_metric(self.metric, row.get(self.column))} after {_epochs(row['epochs'])} "
            f"({str(row['state']).replace('_', ' ')}; one run, one seed)."
        )
        items.append(self.weightings_at_common_epoch())
        top = self.ranked.head(5)[self.column]
        if len(top) > 1:
            low, high = (tables.format_metric(self.metric, v) for v in (top.min(), top.max()))
            items.append(
                f"The top {len(top)} trials span {self.metric} {low} to {high}: single runs, one seed each."
            )
        reproduce = self.results.reproduce
        if reproduce is not None and self.metric in reproduce.index:
            r = reproduce.loc[self.metric]
            n = "" if pd.isna(r["n"]) else f" over {int(r['n'])} seeds"
            items.append(
                f"The best trial's configuration reproduced from scratch{n}: {self.metric} "
                f"{tables.format_metric(self.metric, r['mean'])} ± "
                f"{tables.format_metric(self.metric, r['std'])} (mean ± sample std)."
            )
        else:
            items.append(NOT_REPRODUCED)
        trained, budget = tables.epochs_saved(self.study, self.trials)
        stopped, _ = tables.asha_savings(self.study, self.trials)
        if budget and not math.isnan(budget) and not math.isnan(stopped):
            items.append(
                f"The study trained {trained:.0f} of a full budget of {budget:.0f} epochs; ASHA's early "
                f"stops saved {stopped:.0f} ({100 * stopped / budget:.0f} %)."
            )
        return items

    def answer_sentence(self) -> str:
        """The confirmed answer to the field's question in one or two sentences (`analysis.answer`)."""
        return answer_sentence(self.confirmation, self.budget, self.metric, synthetic=self.synthetic)

    def answer(self) -> list[Block]:
        """The answer: the sentence, then the table of each method's best confirmed configuration against
        the study's own single-task networks, beside the published Nash-MTL rows."""
        blocks: list[Block] = [Heading(2, "The answer: a weighting method against tuned equal weighting")]
        if not self.compared:
            return blocks + [Paragraph(NOT_ANSWERED)]
        if self.synthetic:
            blocks.append(Banner(SYNTHETIC_NUMBERS))
        blocks.append(Paragraph(self.answer_sentence()))
        published = table_rows()
        table = answer_table(self.confirmation, self.weightings, published)
        seeds = pd.to_numeric(table["seeds"], errors="coerce").max()
        caption = answer_caption(0 if pd.isna(seeds) else int(seeds), published, self.synthetic)
        blocks.append(Table(table, caption))
        notes = []
        if not has_delta_m(self.confirmation):
            notes.append(f"{NEEDS_SINGLE_TASK}: the Delta_m column is empty ('-').")
        completed = set(self.trials.loc[self.trials["state"] == COMPLETED, "weighting"].astype(str))
        for weighting in not_retrained(self.confirmation, self.weightings):
            why = (
                "it is not among the configurations retrained: `--per-weighting-best 1` retrains the best of "
                "every method"
                if weighting in completed
                else "it has no completed trial"
            )
            notes.append(f"No configuration of {weighting} was retrained: {why}.")
        return blocks + [Paragraph(" ".join(notes))] if notes else blocks

    def weightings_at_common_epoch(self) -> str:
        """The weightings compared at the last epoch every trial that did not fail reached, in words; their
        bests only when each method ran as many trials."""
        if self.epoch is None:
            return "No trial trained an epoch, so the weightings cannot be compared in this study."
        table = weightings_at_epoch(self.trials, self.results.curves, self.metric, self.epoch)
        total = len(compared_trials(self.trials))
        sentence = common_epoch_sentence(
            table, self.metric, self.epoch, total, self.names, same=self.same_trials
        )
        if len(table) < 2:
            sentence += "; only one weighting ran, so there is nothing to compare it with"
        sentence += ". Single runs, one seed each; ASHA stopped most trials, so later epochs differ"
        if self.compared:
            sentence += "; the confirmation on fresh seeds (first finding) is what compares the methods"
        return sentence + "."

    def confirmation_section(self) -> list[Block]:
        blocks: list[Block] = [Heading(2, "Confirmed ranking on fresh seeds")]
        if self.confirmation is None:
            return blocks + [Paragraph(NOT_CONFIRMED)]
        if self.synthetic:
            blocks.append(Banner(SYNTHETIC_NUMBERS))
        epochs = dict(zip(self.trials["trial"].astype(int), self.trials["epochs"], strict=True))
        max_epochs = self.study.get("max_epochs")
        ranking = ranking_table(
            self.confirmation, self.metric, self.mode, study_epochs=epochs, max_epochs=max_epochs
        )
        seeds = int(ranking["seeds"].max()) if len(ranking) else 0
        budget = f"the full budget ({_epochs(max_epochs)})" if max_epochs else "the full budget"
        blocks.append(
            Table(
                ranking,
                f"Each configuration retrained from scratch with {budget} on the same {seeds} fresh seeds "
                "(`python -m study.reproduce`); each run counts with the mean of its last 10 epochs; mean "
                "over the seeds with its 95 % Student-t interval. 'in the study': the single run the study "
                "ranked, at its last epoch, with the epochs it had when ASHA stopped it short of the "
                "budget (not comparable with a full-budget value).",
            )
        )
        curse = winners_curse(self.confirmation, self.metric, self.best_trial)
        sentences = comparison_sentences(self.confirmation)
        if curse:
            blocks.append(Paragraph(curse))
        if sentences:
            blocks += [
                Paragraph(
                    "Paired comparisons (same seeds; difference A - B, 95 % Student-t interval, paired "
                    "t-test, its p-value adjusted by Holm's method over the comparisons of each metric; "
                    f"'significant' at Holm p < {SIGNIFICANCE:g}, and with 3 seeds only a large, steady "
                    "difference is):"
                ),
                Bullets(tuple(sentences)),
            ]
        else:
            blocks.append(Paragraph("Only one configuration was retrained: nothing to compare it with."))
        return blocks

    def summary(self) -> list[Block]:
        blocks: list[Block] = [
            Heading(2, "Study summary"),
            Table(tables.study_summary(self.study, self.trials)),
        ]
        failed = tables.failed_trials(self.trials)
        if len(failed):
            blocks += [
                Paragraph(f"{len(failed)} failed trial(s), with the reason recorded:"),
                Table(failed.rename(columns={"error": "reason"})),
            ]
        return blocks

    def best_configs(self) -> list[Block]:
        blocks: list[Block] = [Heading(2, "Best configurations")]
        if self.ranked.empty:
            return blocks + [Paragraph("No trial finished with a value of the objective: nothing to rank.")]
        top = tables.top_configs(self.trials, self.column, self.mode, self.results.space)
        caption = (
            f"Top {len(top)} of {len(self.ranked)} finished trials by {self.column} ({self.mode}). "
            "Metrics are the last epoch each trial trained; a trial stopped early by ASHA is ranked at the "
            "epoch it reached. mIoU and pixel accuracy in percent. Single runs, one seed each"
            + (
                ": the confirmation on fresh seeds says which hold up."
                if self.confirmation is not None
                else ", not confirmed on fresh seeds."
            )
        )
        return blocks + [Table(tables.format_top_configs(top, self.column, self.results.space), caption)]

    def comparison(self) -> list[Block]:
        blocks: list[Block] = [Heading(2, "Comparison with the published numbers")]
        if self.synthetic:
            blocks.append(Banner(SYNTHETIC_WARNING))
        best = tables.best_metrics(self.trials, self.results.best)
        if best is None and self.best_row is not None:
            best = {c.removeprefix("last_"): float(v) for c, v in self.best_row.items()
                    if str(c).startswith("last_") and pd.notna(v)}  # fmt: skip
        weighting = ""
        if self.best_row is not None:
            weighting = str(self.best_row["weighting"])
            space = self.results.space
            own = [  # the method's own hyperparameters (e.g. DWA's temperature)
                f"{space.label(c.name)} {tables.format_hyperparameter(c.name, self.best_row.get(c.name))}"
                for c in space.columns
                if c.weightings and weighting in c.weightings and pd.notna(self.best_row.get(c.name))
            ]
            weighting += f" ({', '.join(own)})" if own else ""
        table = tables.comparison_table(
            best,
            self.results.reproduce,
            REFERENCES,
            best_weighting=weighting,
            best_epochs=float(self.best_row["epochs"]) if self.best_row is not None else math.nan,
            trivial=self.results.trivial,
        )
        delta = tables.delta_m_column(table, self.delta_m_row.label)
        if self.synthetic:
            delta[table["kind"].isin(["study", "reproduce", "trivial"]).to_numpy()] = math.nan
        delta.name = f"Delta_m % vs {self.delta_m_row.label}"
        blocks.append(Table(tables.format_comparison(table, delta), COMPARISON_CAPTION))
        if best is None:
            blocks.append(
                Paragraph("This study has no finished trial, so only the published rows are shown.")
            )
        blocks.append(
            Bullets(
                (
                    f"Delta_m (Maninis et al. 2019, Eq. 4) against '{self.delta_m_row.label}': the mean "
                    f"over its {len(self.delta_m_row.values)} metrics of the relative change in percent, "
                    "signed so that lower is better (a worse mIoU or a larger error counts positive); '-' "
                    "where a row lacks one of those metrics in the same convention (not comparable)"
                    + (" and for this study's rows (synthetic data)." if self.synthetic else "."),
                    *CONVENTION_NOTES,
                    *[f"{ref.label}: {ref.source}." for ref in REFERENCES],
                )
            )
        )
        config = (self.results.best or {}).get("config")
        blocks += [
            Heading(3, "Protocol differences"),
            Table(tables.protocol_differences(self.study, config, REFERENCES)),
        ]
        return blocks

    def weighting(self) -> list[Block]:
        """The methods in the study's single runs, only where their budgets compare: every trial at the
        last epoch all reached, the bests only when each method ran as many trials."""
        blocks: list[Block] = [Heading(2, "Weighting methods compared in the study")]
        present = set(self.trials["weighting"].dropna().astype(str))
        if not present:
            return blocks + [Paragraph("No trial ran: nothing to compare.")]
        absent = [str(w) for w in self.results.space.choices("weighting") if w not in present]
        if absent:
            blocks.append(Paragraph(f"No {' or '.join(absent)} trial ran in this study: not shown."))
        if self.epoch is None:
            return blocks + [Paragraph("No trial trained an epoch: nothing to compare.")]
        if self.synthetic:
            blocks.append(Banner(SYNTHETIC_NUMBERS))
        counts = ", ".join(f"{w} {n}" for w, n in trials_per_weighting(self.trials).items())
        words = [
            f"Every trial that did not fail counts with its values at epoch {self.epoch}, the last epoch all "
            f"of them reached, so that each has the same training budget (ASHA stopped most trials "
            f"earlier or later). Trials per method: {counts}."
        ]
        if not self.same_trials:
            words.append(
                "The methods ran unequal numbers of trials (the sampler chose each trial's method, "
                "`--num-samples`): the best of more tries is higher by selection alone, so only medians are "
                "shown, not bests; `python -m study.run --per-weighting N` gives every method N trials."
            )
        if self.compared:
            words.append(DEFER_TO_CONFIRMATION)
        blocks.append(Paragraph(" ".join(words)))
        at_epoch = trials_at_epoch(self.trials, self.results.curves, self.epoch)
        summary = tables.format_weighting_summary(tables.weighting_summary(at_epoch))
        if not self.same_trials:
            summary = summary[[c for c in summary.columns if not c.endswith(", best")]]
        blocks.append(
            Table(
                summary,
                f"Metrics at epoch {self.epoch} over the trials that did not fail, per weighting (median"
                + (" and best)." if self.same_trials else "; unequal numbers of trials, so no best)."),
            )
        )
        figure = self._figure(
            "weighting",
            plots.plot_weighting_distributions(at_epoch, epoch=self.epoch),
            f"Distribution of each metric at epoch {self.epoch} per weighting: box = quartiles of the "
            "trials, marks = single trials (dot: went on to the full budget, X: stopped by ASHA later).",
        )
        return blocks + [figure or Paragraph("No finished trial: nothing to plot.")]

    def hyperparameters(self) -> list[Block]:
        space = self.results.space
        log = [space.label(p) for p in space.numeric if space.scale(p) == "log"]
        logit = [space.label(p) for p in space.numeric if space.scale(p) == "logit"]
        figure = self._figure(
            "hyperparameters",
            plots.plot_metrics_vs_hyperparameters(self.trials, space),
            f"Each final metric against each hyperparameter, one mark per trial at the last epoch it trained "
            "(X: stopped early by ASHA, so fewer epochs: the methods are compared at one budget above). "
            f"Log x axes: {', '.join(log)} (searched on a log scale)."
            + (f" Logit x axis: {', '.join(logit)} (searched uniformly in its logit)." if logit else "")
            + " A weight decay of 0 ('none') cannot sit on a log axis: it is drawn at the tick labelled 0, "
            "left of the dotted break.",
        )
        return [
            Heading(2, "Metrics against hyperparameters"),
            figure or Paragraph("No finished trial: nothing to plot."),
        ]

    def curves(self) -> list[Block]:
        rungs = tables.asha_rungs(self.study)
        rung_text = ", ".join(map(str, rungs)) or "none"
        figure = self._figure(
            "curves",
            plots.plot_learning_curves(self.results.curves, self.trials, rungs=rungs),
            "Validation metrics per epoch for every trial; X marks where ASHA stopped a trial, a dot where "
            f"a trial finished its budget; dotted lines are the ASHA rungs ({rung_text}).",
        )
        return [
            Heading(2, "Learning curves"),
            figure or Paragraph("No trial recorded any epoch: nothing to plot."),
        ]

    def importance(self) -> list[Block]:
        blocks: list[Block] = [Heading(2, "Hyperparameter importance")]
        if self.optuna_study is None:
            return blocks + [Paragraph(f"Not computed: {self.optuna_error}.")]
        result: Importance = param_importances(self.optuna_study)
        if result.values is None:
            return blocks + [Paragraph(f"{result.message[0].upper()}{result.message[1:]}.")]
        blocks.append(Paragraph(f"Importance of each hyperparameter for the objective: {result.message}."))
        if result.values is not None:
            figure = self._figure(
                "importance",
                plots.plot_importance(result.values, result.evaluator, self.results.space),
                f"Hyperparameter importance, {result.evaluator}, from the Optuna journal "
                f"({result.complete} completed trials; a weighting method's own hyperparameters are rated "
                "over that method's trials only).",
            )
            if figure is not None:
                blocks.append(figure)
        return blocks

    def _confirmed_points(self) -> list[plots.ConfirmedPoint]:
        """The confirmation's configurations (not its single-task runs) with their intervals, each
        marked dominated when, in a study of several objectives, another's intervals dominate it."""
        if self.confirmation is None:
            return []
        weightings = dict(
            zip(
                self.confirmation.configs["config"],
                self.confirmation.configs["weighting"].astype(str),
                strict=True,
            )
        )
        points = []
        for name, rows in self.multi_task.groupby("config", sort=False):
            values = {
                str(r.metric): plots.Interval(float(r.mean), float(r.ci_low), float(r.ci_high))
                for r in rows.itertuples()
            }
            dominated = bool(self.dominated.get(name))
            points.append(plots.ConfirmedPoint(str(name), weightings.get(name, "?"), values, dominated))
        return points

    def _single_task(self) -> dict[str, tuple[str, float]]:
        """Metric -> (name, mean over its fresh seeds) of the confirmation's single-task run of the
        metric's task (`analysis.confirmation.single_task_configs`), for every metric that has one."""
        if self.confirmation is None:
            return {}
        configs = single_task_configs(self.confirmation)
        lines = {}
        for row in self.confirmation.summary.itertuples():
            task = METRICS[str(row.metric)].task if str(row.metric) in METRICS else None
            if task is not None and str(row.config) == configs.get(task):
                lines[str(row.metric)] = (f"single-task {task} (fresh seeds, mean)", float(row.mean))
        return lines

    def tradeoff(self) -> list[Block]:
        if self.objectives:
            return self.front()
        blocks: list[Block] = [Heading(2, "Trade-off between the tasks")]
        confirmed = self._confirmed_points()
        figure = self._figure(
            "tradeoff",
            plots.plot_tradeoff(self.trials, confirmed=confirmed, single_task=self._single_task()),
            "Final mIoU (accumulated, %) against final depth abs err (per-pixel mean) per trial; circled and "
            "joined: the Pareto front of the points the search visited (no other trial has both a higher "
            "mIoU and a lower error; the search optimised one score, not this front)"
            + (
                "; diamonds with bars: the configurations retrained on fresh seeds, mean of their last 10 "
                "epochs with its 95 % interval"
                if confirmed
                else ""
            )
            + f"; {SINGLE_TASK_LINES}.",
        )
        if figure is None:
            return blocks + [Paragraph("No finished trial with both metrics: nothing to plot.")]
        finished = self.trials.loc[(self.trials["state"] != "failed")].dropna(
            subset=["last_miou", "last_abs_err"]
        )
        front = finished.loc[tables.pareto_front(finished, "last_miou", "last_abs_err")]
        front = front.sort_values("last_miou", ascending=False)
        rows = pd.DataFrame(
            {
                "trial": tables.trial_names(front),
                "weighting": front["weighting"].astype(str),
                "epochs": front["epochs"].map(lambda v: f"{v:.0f}"),
                label("miou"): front["last_miou"].map(lambda v: tables.format_metric("miou", v)),
                label("abs_err"): front["last_abs_err"].map(lambda v: tables.format_metric("abs_err", v)),
            }
        )
        return blocks + [figure, Table(rows, f"The {len(rows)} trial(s) on the Pareto front.")]

    def front_sentence(self) -> str:
        """Which weighting methods have trials on the front, and which have none (and why)."""
        front = self.trials.loc[self.trials[PARETO_COLUMN]]
        if front.empty:
            return "No trial completed its budget, so the study has no Pareto front."
        on_front = front["weighting"].astype(str).value_counts()
        completed = self.trials.loc[self.trials["state"] == COMPLETED, "weighting"].astype(str).value_counts()
        searched = list(self.results.space.choices("weighting"))
        methods = searched + sorted(set(on_front.index) - set(searched))
        on = [f"{w} ({on_front[w]} of {len(front)})" for w in methods if w in on_front]
        off = [
            f"{w} (its {completed[w]} completed trial(s) all dominated)"
            if w in completed
            else f"{w} (no completed trial)"
            for w in methods
            if w not in on_front
        ]
        sentence = f"Weighting methods on the Pareto front of {', '.join(self.objectives)}: {', '.join(on)}"
        return sentence + (f"; none of {', '.join(off)}." if off else ".")

    def front(self) -> list[Block]:
        """A study of several objectives: its searched front, the confirmation of the front's points and
        the hypervolume over the study."""
        keys = self.objectives
        completed = self.trials.loc[self.trials["state"] == COMPLETED]
        stopped = int((self.trials["state"] == "stopped_early").sum())
        directions = dict(zip(keys, self.study.get("directions") or [], strict=False))
        judged = ", ".join(f"{k} ({directions.get(k, '?')})" for k in keys)
        blocks: list[Block] = [
            Heading(2, f"The Pareto front of {', '.join(keys)}"),
            Paragraph(
                f"The study searched {len(keys)} objectives at once "
                f"({judged}), each trial judged by the "
                "mean of its last 10 epochs. A trial is on the front when no other completed trial is at "
                "least as good in every objective and better in one. Only trials that trained the full "
                f"budget can be ({len(completed)} here); ASHA stopped {stopped} on the study's one metric, "
                f"{self.metric}, so a trial that would have ended on the front may be among them. "
                + self.front_sentence()
            ),
        ]
        confirmed = self._confirmed_points()
        shown = (
            f" in all {len(keys)} objectives, shown on the first two"
            if len(keys) > 2
            else ", joined by the staircase it dominates"
        )
        figure = self._figure(
            "tradeoff",
            plots.plot_tradeoff(
                self.trials,
                keys[0],
                keys[1],
                front=self.trials[PARETO_COLUMN],
                confirmed=confirmed,
                single_task=self._single_task(),
            ),  # fmt: skip
            f"Every completed trial, {label(keys[0])} against {label(keys[1])} (means of the last 10 "
            f"epochs), coloured by weighting; circled: the front{shown}; diamonds with bars: "
            "configurations retrained on fresh seeds (mean and 95 % interval; hollow: another's intervals "
            f"are better in every objective); {SINGLE_TASK_LINES}.",
        )
        if figure is None:
            return blocks + [Paragraph("No trial completed its budget: there is no front to draw.")]
        front = completed.loc[completed[PARETO_COLUMN]]
        rows = pd.DataFrame(
            {
                "trial": tables.trial_names(front),
                "weighting": front["weighting"].astype(str),
                **{label(k): front[f"tail_{k}"].map(lambda v, k=k: tables.format_metric(k, v)) for k in keys},
            }
        )
        caption = f"The {len(rows)} trial(s) on the front (means of the last 10 epochs)."
        confirmation = Paragraph(self.front_confirmation_text())
        return [*blocks, figure, Table(rows, caption), confirmation, *self.hypervolume()]

    def front_confirmation_text(self) -> str:
        """Which front configurations, retrained on fresh seeds, stay non-dominated once their intervals
        count, or how to retrain them."""
        judged: dict[str, list[str]] = {}
        if self.confirmation is not None:
            configs = self.confirmation.configs
            on_front = set(configs.loc[configs["roles"].str.contains(PARETO_ROLE, regex=False), "config"])
            judged = {name: by for name, by in self.dominated.items() if name in on_front}
        if not judged or self.confirmation is None:
            return (
                "The front is not confirmed yet: `python -m study.reproduce RESULTS_DIR --pareto` retrains "
                "every front point on the same fresh seeds."
            )
        stays = [name for name, by in judged.items() if not by]
        beaten = [f"{name} (by {', '.join(by)})" for name, by in judged.items() if by]
        seeds = int(self.confirmation.summary["n"].max())
        return (
            f"Retrained on the same {seeds} fresh seeds, {len(stays)} of the {len(judged)} front "
            f"configurations stay non-dominated once their 95 % intervals count (dominated: another's "
            f"whole interval is better than its own in every objective): {', '.join(stays) or 'none'}"
            + (f"; dominated: {', '.join(beaten)}." if beaten else ".")
        )

    def hypervolume(self) -> list[Block]:
        history = StudyFolder(self.results.path).read_hypervolume()
        if history is None or history.empty or self.results.trivial is None:
            return []
        reference = reference_point(self.results.trivial, self.objectives)
        where = ", ".join(
            f"{k} {tables.format_metric(k, v)}" for k, v in zip(self.objectives, reference, strict=True)
        )
        figure = self._figure(
            "hypervolume",
            plots.plot_hypervolume(history, self.objectives),
            "The hypervolume of the front of the trials completed so far (moocore), after each completed "
            f"trial, against the trivial predictors' metrics ({where}): the region of objective space that "
            "the front dominates and that beats the trivial predictors; grey squares: the front's size.",
        )
        last = history.iloc[-1]
        return [
            *([figure] if figure is not None else []),
            Paragraph(
                f"Hypervolume after all {int(last['completed'])} completed trials: {last['hypervolume']:.4g} "
                f"({int(last['front_size'])} front point(s); hypervolume.csv has its history)."
            ),
        ]

    def task_weights(self) -> list[Block]:
        blocks: list[Block] = [Heading(2, "Task weights of the best trial with adaptive weights")]
        adaptive = tables.adaptive_trials(self.results.curves)
        candidates = self.ranked.loc[self.ranked["trial"].isin(adaptive)]
        if candidates.empty:
            return blocks + [
                Paragraph(
                    "Not shown: no finished trial changed its task weights (every one weighted each task 1)."
                )
            ]
        row = candidates.iloc[0]
        curve = self.results.curves.loc[self.results.curves["trial"] == row["trial"]]
        space = self.results.space
        own = [
            f"{space.label(c.name)} {tables.format_hyperparameter(c.name, row.get(c.name))}"
            for c in space.columns
            if c.weightings and row["weighting"] in c.weightings and pd.notna(row.get(c.name))
        ]
        method = f"{row['weighting']}" + (f", {', '.join(own)}" if own else "")
        name = self.names[int(row["trial"])]
        figure = self._figure(
            "weights",
            plots.plot_task_weights(curve, name, method),
            f"Task weights of trial {name} ({method}; the best trial by {self.column} whose "
            "weights changed) per epoch, beside the per-task training losses.",
        )
        return blocks + [figure or Paragraph(f"Trial {name} recorded no weight/<task> values.")]

    def predictions(self) -> list[Block]:
        blocks: list[Block] = [Heading(2, "Predictions of the best confirmed configuration")]
        path = self.out / PREDICTIONS_FILE
        panel = prediction_panel(self.results)
        if isinstance(panel, str):
            path.unlink(missing_ok=True)  # from an earlier report of this folder
            return blocks + [Paragraph(f"Not shown: {panel}.")]
        self.figures.append(plots.save_figure(panel.figure, path))
        caption = (
            f"Configuration {panel.config} retrained from scratch on seed {panel.seed}, after epoch "
            f"{panel.epoch} of {panel.epochs}, on the fixed validation images {panel.indices} (the same for "
            "every run on this data): per row the image, segmentation truth and prediction, the prediction "
            "over the image, and depth truth and prediction on one colour scale; the legend names the class "
            "colours, void (not scored) and invalid depth."
        )
        return blocks + [Figure(path, caption, "Predictions of the best confirmed configuration")]

    def blocks(self) -> list[Block]:
        return [
            *self.header(),
            *self.answer(),
            *self.summary(),
            *self.best_configs(),
            *self.comparison(),
            *self.confirmation_section(),
            *self.weighting(),
            *self.hyperparameters(),
            *self.curves(),
            *self.importance(),
            *self.tradeoff(),
            *self.task_weights(),
            *self.predictions(),
        ]


def write_report(
    results_dir: str | Path, out_dir: str | Path | None = None, delta_m_row: str = DEFAULT_DELTA_M_ROW
) -> ReportFiles:
    """Load a results directory and write report.md, report.html and the figures into `out_dir`
    (default RESULTS_DIR/report)."""
    results = load_results(results_dir)
    out = Path(out_dir) if out_dir is not None else results.path / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"{out}: cannot create the report folder ({error.strerror})") from None
    report = _Report(results, out, delta_m_row)
    try:
        blocks = report.blocks()
        for stale in {*FIGURE_FILES.values(), *FRONT_FIGURE_FILES.values()} - {
            p.name for p in report.figures
        }:
            (out / stale).unlink(missing_ok=True)
        title = f"MTAN study report: {results.name}"
        atomic_write_text(out / "report.md", to_markdown(blocks))
        atomic_write_text(out / "report.html", to_html(blocks, title))
    except PermissionError as error:
        raise UserError(f"{out}: cannot write the report ({error.strerror})") from None
    trials = results.trials
    every_failed = not trials.empty and (trials["state"] == FAILED).all()
    return ReportFiles(
        out / "report.md",
        out / "report.html",
        tuple(report.figures),
        all_failed_note(trials) if every_failed else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the report of one study."""
    parser = command_parser(
        "analysis.report",
        "Write the comparison report of a study: report.md, a self-contained report.html (open "
        "it in a browser) and the figures as PNG beside them.",
    )
    parser.add_argument("results_dir", metavar="RESULTS_DIR", help="a study's results directory")
    parser.add_argument("--out", metavar="DIR", help="where to write the report (default RESULTS_DIR/report)")
    parser.add_argument(
        "--delta-m-row",
        metavar="KEY",
        default=DEFAULT_DELTA_M_ROW,
        choices=[r.key for r in REFERENCES],
        help=f"the published row Delta_m is computed against (default {DEFAULT_DELTA_M_ROW})",
    )
    args = parser.parse_args(argv)
    files = write_report(args.results_dir, args.out, args.delta_m_row)
    print(f"wrote {files.markdown}, {files.html} and {len(files.figures)} figure(s)")
    if files.all_failed:
        print(files.all_failed)
    return 0


if __name__ == "__main__":
    run_cli(main)
