"""The report's figures, drawn with matplotlib (Agg) and returned as inline SVG text.

Inline SVG keeps report.html one file that opens offline (no CDN, no image files), stays sharp when zoomed and
keeps its text searchable. Each figure's element ids are prefixed so several SVGs can share one HTML document.
Every function takes plain data (already pulled out of summary.json by report/html.py) and returns SVG text.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap, TwoSlopeNorm  # noqa: E402

_counter = itertools.count(1)
BASE_COLOUR = "#333333"
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
STYLE = {
    "svg.fonttype": "none",  # text stays <text>, not glyph paths: smaller and selectable
    "svg.hashsalt": "compsafe",  # deterministic ids, so the same run gives the same report
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


CHANGE_MAP = LinearSegmentedColormap.from_list("worse-same-better", ["#c0392b", "#ffffff", "#2e9e57"])


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def model_colours(labels: Sequence[str]) -> dict[str, str]:
    """One colour per model for every figure of a report: the base dark grey, variants in run order."""
    colours = {"base": BASE_COLOUR}
    colours.update({label: colour(i) for i, label in enumerate(x for x in labels if x != "base")})
    return colours


def _annotate_groups(ax, labelled: Sequence[tuple[str, float, float, str]]) -> None:
    """Label points, joining the names of models that sit on the same spot instead of printing them over each other."""
    if not labelled:
        return
    xs, ys = [p[1] for p in labelled], [p[2] for p in labelled]
    x_span, y_span = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    groups: dict[tuple[float, float], list[tuple[str, str]]] = {}
    anchors: dict[tuple[float, float], tuple[float, float]] = {}
    for name, x, y, c in labelled:  # points within 1% of the axis spans share one label
        key = (round(x / x_span, 2), round(y / y_span, 2))
        groups.setdefault(key, []).append((name, c))
        anchors.setdefault(key, (x, y))
    for key, members in groups.items():
        x, y = anchors[key]
        text = ", ".join(name for name, _ in members)
        c = members[0][1] if len(members) == 1 else "#444444"
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8, color=c)


def to_svg(fig: plt.Figure) -> str:
    """SVG text of a figure without the XML prolog, DOCTYPE and metadata, ids made unique in the page."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    prefix = f"f{next(_counter)}-"
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})" if m.group(1) in ids else m.group(0), svg)
    svg = re.sub(
        r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"' if m.group(1) in ids else m.group(0), svg
    )
    return svg.replace("<svg ", '<svg class="plot" role="img" ', 1)


def safety_vs_capability(
    points: Sequence[dict],
    capability_label: str,
    safety_label: str = "refusal rate on harmful requests",
    colours: dict[str, str] | None = None,
) -> str:
    """Each model at (capability, safety), an arrow from the base to every variant, labelled with its drift ratio.

    points: [{label, capability, safety, safety_low, safety_high, drift}] with the base first.
    """
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7.5, 4.8))
        base = points[0]
        colours = colours or model_colours([p["label"] for p in points])
        labelled = []
        for point in points:
            is_base = point["label"] == "base"
            c = colours.get(point["label"], BASE_COLOUR)
            if point.get("safety_low") is not None and point.get("safety_high") is not None:
                low, high = max(point["safety_low"], 0.0), min(point["safety_high"], 1.0)  # a rate stays in [0, 1]
                err = [[max(point["safety"] - low, 0)], [max(high - point["safety"], 0)]]
                ax.errorbar(point["capability"], point["safety"], yerr=err, fmt="none", ecolor=c, alpha=0.5, capsize=3)
            ax.scatter(
                point["capability"],
                point["safety"],
                s=90 if is_base else 60,
                color=c,
                zorder=3,
                marker="*" if is_base else "o",
                label=point["label"],
            )
            if not is_base:
                ax.annotate(
                    "",
                    xy=(point["capability"], point["safety"]),
                    xytext=(base["capability"], base["safety"]),
                    arrowprops={"arrowstyle": "->", "color": c, "alpha": 0.5, "lw": 1},
                )
                text = point["label"] + (f" (drift {point['drift']})" if point.get("drift") else "")
                labelled.append((text, point["capability"], point["safety"], c))
        _annotate_groups(ax, labelled)
        ax.set_xlabel(f"capability: {capability_label} (higher is better)")
        ax.set_ylabel(f"safety: {safety_label}")
        ax.set_title("Safety vs capability (arrows: base → variant)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        return to_svg(fig)


def pareto_front(points: Sequence[tuple[float, float]], minimise_x: bool) -> list[int]:
    """Indices of the points no other point beats on both axes (x minimised or maximised, y maximised)."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = False
        for j, (x2, y2) in enumerate(points):
            if j == i:
                continue
            better_x = x2 <= x if minimise_x else x2 >= x
            strictly = (x2 != x) or (y2 > y)
            if better_x and y2 >= y and strictly:
                dominated = True
                break
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda k: points[k][0])


def cost_vs_safety(
    rows: Sequence[dict], safety_label: str = "refusal rate", colours: dict[str, str] | None = None
) -> str:
    """Effective bits per weight and sparsity against the refusal rate, with the Pareto front of each.

    rows: [{label, bits, sparsity, safety}] (base included); a model without a value on an axis is left out.
    """
    panels = [
        ("bits", "effective bits per weight (lower is smaller)", True),
        ("sparsity", "sparsity (higher is smaller)", False),
    ]
    colours = colours or model_colours([r["label"] for r in rows])
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for ax, (key, xlabel, minimise) in zip(axes, panels, strict=True):
            shown = [r for r in rows if r.get(key) is not None and r.get("safety") is not None]
            coords = [(float(r[key]), float(r["safety"])) for r in shown]
            labelled = []
            for row, (x, y) in zip(shown, coords, strict=True):
                c = colours.get(row["label"], BASE_COLOUR)
                ax.scatter(x, y, color=c, s=70, marker="*" if row["label"] == "base" else "o", zorder=3)
                labelled.append((row["label"], x, y, c))
            _annotate_groups(ax, labelled)
            front = pareto_front(coords, minimise_x=minimise)
            if len(front) > 1:
                ax.step(
                    [coords[i][0] for i in front],
                    [coords[i][1] for i in front],
                    where="post" if minimise else "pre",
                    color="#888",
                    ls="--",
                    lw=1,
                    label="Pareto front",
                )
                ax.legend(fontsize=8, loc="best")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(safety_label)
            ax.grid(alpha=0.3)
        fig.suptitle("Compression vs safety: models on the dashed front are not beaten on both axes")
        return to_svg(fig)


def category_heatmap(
    models: Sequence[str],
    categories: Sequence[str],
    rates: list[list[float | None]],
    base_rates: Sequence[float | None],
    title: str,
    higher_is_better: bool = True,
) -> str:
    """Rates per model (rows) and category (columns); colour is the change from the base, red where worse."""
    with plt.rc_context(STYLE):
        width = max(6.0, 0.75 * len(categories) + 2.5)
        fig, ax = plt.subplots(figsize=(width, 0.45 * len(models) + 2.2))
        deltas = [
            [(r - b) if (r is not None and b is not None) else math.nan for r, b in zip(row, base_rates, strict=True)]
            for row in rates
        ]
        signed = [[d if higher_is_better else -d for d in row] for row in deltas]
        limit = max([abs(d) for row in signed for d in row if not math.isnan(d)] + [0.05])
        image = ax.imshow(signed, cmap=CHANGE_MAP, norm=TwoSlopeNorm(0.0, -limit, limit), aspect="auto")
        for i, row in enumerate(rates):
            for j, value in enumerate(row):
                ax.text(j, i, "-" if value is None else f"{100 * value:.0f}", ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(categories)), [c.replace("_", " ") for c in categories], rotation=35, ha="right")
        ax.set_yticks(range(len(models)), models)
        ax.set_title(title)
        bar = fig.colorbar(image, ax=ax, fraction=0.03)
        bar.set_label("change from base (green: better)")
        return to_svg(fig)


MODULE_COLOURS = {
    "q_proj": "#1f77b4", "k_proj": "#aec7e8", "v_proj": "#ff7f0e", "o_proj": "#ffbb78",
    "gate_proj": "#2ca02c", "up_proj": "#98df8a", "down_proj": "#d62728", "lm_head": "#9467bd",
}  # fmt: skip


def layer_errors(variants: Sequence[tuple[str, Sequence[dict]]], top: int = 3) -> str:
    """Relative weight error of every compressed layer, one row of bars per variant; worst layers named."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(len(variants), 1, figsize=(11, 2.3 * len(variants) + 0.6), squeeze=False)
        for ax, (label, layers) in zip(axes[:, 0], variants, strict=True):
            errors = [float(layer.get("relative_error") or 0.0) for layer in layers]
            kinds = [layer["name"].rsplit(".", 1)[-1] for layer in layers]
            ax.bar(range(len(errors)), errors, width=1.0, color=[MODULE_COLOURS.get(k, "#7f7f7f") for k in kinds])
            for i in sorted(range(len(errors)), key=lambda k: -errors[k])[:top]:
                ax.annotate(
                    layers[i]["name"].removeprefix("model."),
                    (i, errors[i]),
                    fontsize=7,
                    textcoords="offset points",
                    xytext=(2, 2),
                    rotation=0,
                )
            ax.set_ylabel("rel. error")
            ax.set_title(f"{label}: relative weight error per layer (in model order)", fontsize=9, loc="left")
            ax.set_xlim(-1, len(errors))
            ax.set_xticks([])
        present = [k for k in MODULE_COLOURS if any(k in layer["name"] for _, ls in variants for layer in ls)]
        handles = [plt.Rectangle((0, 0), 1, 1, color=MODULE_COLOURS[k]) for k in present]
        if handles:
            fig.legend(handles, present, loc="lower center", ncol=len(present), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0.05 if handles else 0, 1, 1))
        return to_svg(fig)


def reliability(
    curves: Sequence[tuple[str, Sequence[float], Sequence[float]]], title: str, colours: dict[str, str] | None = None
) -> str:
    """Reliability diagram: mean confidence (x) against accuracy (y) per bin, one line per model."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(5.5, 5))
        ax.plot([0, 1], [0, 1], ls="--", color="#999", lw=1, label="perfectly calibrated")
        colours = colours or model_colours([c[0] for c in curves])
        for label, confidence, accuracy in curves:
            c = colours.get(label, BASE_COLOUR)
            ax.plot(confidence, accuracy, marker="o", color=c, label=label)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        return to_svg(fig)


def by_length(
    curves: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    title: str,
    ylabel: str,
    colours: dict[str, str] | None = None,
) -> str:
    """A metric against context length, one line per model (long-context accuracy)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7, 4))
        colours = colours or model_colours([c[0] for c in curves])
        for label, lengths, values in curves:
            c = colours.get(label, BASE_COLOUR)
            ax.plot(lengths, values, marker="o", color=c, label=label)
        lengths_seen = [x for _, xs, _ in curves for x in xs]
        if lengths_seen and min(lengths_seen) > 0 and max(lengths_seen) / min(lengths_seen) > 8:
            ax.set_xscale("log", base=2)
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        return to_svg(fig)


def sensitivity_bars(rows: Sequence[tuple[str, float]], title: str, xlabel: str) -> str:
    """Horizontal bars, largest first: a layer-sensitivity ranking."""
    rows = sorted(rows, key=lambda r: -r[1])[:30]
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(8, 0.28 * len(rows) + 1.2))
        ax.barh(range(len(rows)), [r[1] for r in rows], color=PALETTE[0])
        ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        return to_svg(fig)


def group_lines(
    rates: Sequence[float], groups: dict[str, Sequence[float | None]], *, title: str, xlabel: str, ylabel: str
) -> str:
    """Each group's value against the compression rate, one line per group (each line's SVG id starts with
    ``group-line-``); a missing value breaks no line, it is skipped."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7, 4))
        for index, (group, values) in enumerate(groups.items()):
            points = [(r, v) for r, v in zip(rates, values, strict=True) if v is not None and math.isfinite(v)]
            if points:
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=colour(index),
                        label=group, gid=f"group-line-{index}")  # fmt: skip
        ax.set_xticks(list(rates), [f"{r:g}" for r in rates])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        return to_svg(fig)
