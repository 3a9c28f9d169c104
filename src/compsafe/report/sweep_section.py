"""The report's "groups against the compression rate" section: for a run with a sweep (``mag-10..50/20``), each
per-group bias metric plotted against the rate, one line per group.

Why: a bias score averaged over groups can stay flat while groups move apart (seed 002: compression hurts some
groups more than others). Lines that fan out as the rate grows show that at a glance; the table under each
figure gives the numbers and the spread (largest minus smallest group) at each rate. Which metrics are
per-group is declared by the probes (the ``GROUP`` role, ``probes/declarations.py``); nothing here names a probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from compsafe.compress.sweeps import RATE, Sweep, find_sweeps
from compsafe.metrics import declarations, metric_value, numeric_keys, variant_labels
from compsafe.probes.declarations import GROUP, Metric
from compsafe.summary import RunSummary


@dataclass(frozen=True)
class GroupFigure:
    """One per-group metric of one probe along one sweep: the x values and each group's y values."""

    probe: str
    metric: str  # the key with the group part as "*": "by_category.*.bias_score_ambiguous"
    sweep: Sweep
    rates: tuple[float, ...]
    labels: tuple[str, ...]  # the model behind each rate ("base" first when the sweep starts at the base)
    groups: dict[str, list[float | None]]

    def spread(self) -> list[float | None]:
        """Largest minus smallest group value at each rate (None where fewer than two groups have a value)."""
        spreads = []
        for index in range(len(self.rates)):
            values = [v[index] for v in self.groups.values() if v[index] is not None]
            spreads.append(max(values) - min(values) if len(values) >= 2 else None)
        return spreads


def _group_position(metric: Metric) -> int:
    return metric.key.split(".").index(next(p for p in metric.key.split(".") if "*" in p))


def group_figures(summary: RunSummary) -> list[GroupFigure]:
    """Every (sweep, probe, per-group metric) of the run with at least two groups, in run order."""
    figures = []
    for sweep in find_sweeps(variant_labels(summary)):
        labels = (["base"] if sweep.base_rate is not None else []) + sweep.labels
        rates = ([sweep.base_rate] if sweep.base_rate is not None else []) + [rate for rate, _ in sweep.points]
        for probe in summary.probes:
            for metric in (m for m in declarations(probe) if GROUP in m.roles):
                position = _group_position(metric)
                keys = sorted({key for label in labels for key in numeric_keys(summary.probe_metrics(label, probe))
                               if metric.matches(key)})  # fmt: skip
                by_figure: dict[str, dict[str, str]] = {}
                for key in keys:
                    parts = key.split(".")
                    group, parts[position] = parts[position], "*"
                    by_figure.setdefault(".".join(parts), {})[group] = key
                for figure_key, groups in by_figure.items():
                    if len(groups) < 2:
                        continue
                    values = {g: [metric_value(summary, label, f"{probe}.{k}") for label in labels]
                              for g, k in sorted(groups.items())}  # fmt: skip
                    figures.append(GroupFigure(probe, figure_key, sweep, tuple(rates), tuple(labels), values))
    return figures


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:+.3f}"


def _table(figure: GroupFigure) -> str:
    head = "".join(f"<th>{escape(label)}</th>" for label in figure.labels)
    rows = "".join(
        f"<tr><td>{escape(group)}</td>" + "".join(f"<td>{_number(v)}</td>" for v in values) + "</tr>"
        for group, values in figure.groups.items()
    )
    spread = "".join(f"<td>{_number(v)}</td>" for v in figure.spread())
    return (f'<table class="sweep"><tr><th>group</th>{head}</tr>{rows}'
            f"<tr><td><b>spread (max − min)</b></td>{spread}</tr></table>")  # fmt: skip


def sweep_section(summary: RunSummary) -> str:
    """The section's HTML (figures with tables), or "" when the run has no sweep or no per-group metric."""
    from compsafe.report.plots import group_lines

    parts = []
    for figure in group_figures(summary):
        axis = figure.sweep.family.replace(RATE, "N")
        title = f"{figure.probe} {figure.metric} against N in {axis}"
        svg = group_lines(
            figure.rates,
            figure.groups,
            title=title,
            xlabel=f"N in {axis}" + (" (base = 0)" if figure.sweep.base_rate is not None else ""),
            ylabel=f"{figure.probe} {figure.metric}",
        )
        caption = (
            "One line per group. Lines that move apart as N grows mean compression changes the groups "
            "unequally; the table's last row is the spread between the groups at each rate."
        )
        parts.append(f'<figure data-plot="sweep-{escape(figure.probe)}-{escape(figure.metric)}">{svg}'
                     f"<figcaption>{escape(caption)}</figcaption></figure>{_table(figure)}")  # fmt: skip
    return "<h2>Groups against the compression rate</h2>" + "".join(parts) if parts else ""


def sweep_table_markdown(summary: RunSummary) -> list[str]:
    """The same numbers as Markdown tables (for docs and the Markdown report): one table per figure."""
    lines: list[str] = []
    for figure in group_figures(summary):
        lines += [f"**{figure.probe} `{figure.metric}` along `{figure.sweep.family}`**", ""]
        lines.append("| group | " + " | ".join(figure.labels) + " |")
        lines.append("|---" * (len(figure.labels) + 1) + "|")
        for group, values in figure.groups.items():
            lines.append(f"| {group} | " + " | ".join(_number(v) for v in values) + " |")
        lines.append("| spread (max − min) | " + " | ".join(_number(v) for v in figure.spread()) + " |")
        lines.append("")
    return lines


__all__ = ["GroupFigure", "group_figures", "sweep_section", "sweep_table_markdown"]
