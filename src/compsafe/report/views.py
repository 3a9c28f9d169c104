"""Rich views of command results (gate, verify, compare, sensitivity, mitigation, judges, profiles).

The gate view must fit one screen: a verdict line, one compact row per variant, then one line per failing
rule saying what was measured, what was allowed and the statistical evidence.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from compsafe.gate import FAIL, INSUFFICIENT, PASS, SKIP, GateResult
from compsafe.manifest import VerifyResult
from compsafe.metrics import DRIFT, format_change, format_value


def print_gate(result: GateResult, console: Console) -> None:
    policy = result.policy
    verdict = "[bold green]PASS[/]" if result.passed else f"[bold red]FAIL[/] ({result.failure_count} failing)"
    console.print(f"compsafe gate · policy [bold]{escape(policy.name)}[/] · {len(result.checks)} checks: {verdict}")
    for note in result.notes:
        console.print(f"[bold yellow]! {escape(note)}[/]", highlight=False)
    for problem in result.problems:
        console.print(f"[red]✗[/] {escape(problem)}", highlight=False)
    if result.checks:
        table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
        for column in ("variant", "pass", "fail", "insufficient", "skipped"):
            table.add_column(column, justify="left" if column == "variant" else "right")
        for label in dict.fromkeys(c.variant for c in result.checks):
            mine = [c for c in result.checks if c.variant == label]
            fails = sum(c.status == FAIL for c in mine)
            short = sum(c.status == INSUFFICIENT for c in mine)
            table.add_row(
                escape(label),
                str(sum(c.status == PASS for c in mine)),
                f"[red]{fails}[/]" if fails else "0",
                (f"[yellow]{short}[/]" if result.allow_insufficient else f"[red]{short}[/]") if short else "0",
                str(sum(c.status == SKIP for c in mine)),
            )
        console.print(table)
    for check in [c for c in result.checks if c.status in (FAIL, INSUFFICIENT)]:
        mark = "[yellow]?[/]" if check.status == INSUFFICIENT and result.allow_insufficient else "[red]✗[/]"
        evidence = f"\n    [dim]{escape(check.evidence)}[/]" if check.evidence else ""
        console.print(
            f"{mark} [bold]{escape(check.variant)}[/] · {escape(check.rule.describe())} [{check.status}]\n"
            f"    {escape('; '.join(check.reasons))}{evidence}",
            highlight=False,
        )
    if result.allow_insufficient and any(c.status == INSUFFICIENT for c in result.checks):
        console.print("[dim]insufficient evidence allowed by the policy / --allow-insufficient[/]", highlight=False)
    skipped = sorted({c.rule.metric for c in result.checks if c.status == SKIP})
    if skipped:
        console.print(f"[dim]skipped (probe not run, rule not required): {escape(', '.join(skipped))}[/]",
                      highlight=False)  # fmt: skip


def print_verify(result: VerifyResult, console: Console, model_dir: str) -> None:
    if result.ok:
        message = f"[bold green]OK[/] {escape(model_dir)}: {result.checked} files match the manifest"
        console.print(message, highlight=False)
        return
    console.print(
        f"[bold red]MISMATCH[/] {escape(model_dir)} does not match its manifest: "
        f"{len(result.changed)} changed, {len(result.missing)} missing, {len(result.extra)} extra",
        highlight=False,
    )
    for title, names in (("changed", result.changed), ("missing", result.missing), ("extra", result.extra)):
        for name in names:
            console.print(f"  [red]{title:>7}[/] {escape(name)}", highlight=False)
    console.print("[bold red]Do not deploy these files: they are not the ones that were evaluated.[/]")


def compare_table(result: dict[str, Any], run_a: str, run_b: str) -> Table:
    """One row per model and metric; metric keys are shown without their probe (unique in this version)."""
    table = Table(
        title="compsafe compare: run A → run B",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("model", no_wrap=True)
    table.add_column("metric", no_wrap=True)
    for column in ("A", "B", "B − A", "A vs base", "B vs base"):
        table.add_column(column, justify="right", no_wrap=True)
    previous = None
    for row in result["rows"]:
        metric = row["metric"]

        def value(v: Any, metric: str = metric) -> str:
            return format_value(metric, float(v)) if v is not None else "-"

        table.add_row(
            escape(row["label"]) if row["label"] != previous else "",
            "drift ratio" if metric == DRIFT else metric.split(".", 1)[-1],
            value(row["a"]),
            value(row["b"]),
            format_change(metric, row["change"]),
            format_change(metric, row.get("a_vs_base")) if "a_vs_base" in row else "",
            format_change(metric, row.get("b_vs_base")) if "b_vs_base" in row else "",
        )
        previous = row["label"]
    notes = [f"A = {run_a}", f"B = {run_b}"]
    notes += [f"only in A: {', '.join(result['only_in_a'])}"] if result["only_in_a"] else []
    notes += [f"only in B: {', '.join(result['only_in_b'])}"] if result["only_in_b"] else []
    notes += [f"warning: {w}" for w in result["warnings"]]
    table.caption = escape("\n".join(notes))
    return table


def print_compare(result: dict[str, Any], run_a: str, run_b: str, console: Console) -> None:
    # Logs and pipes get a fixed wide table instead of rich's 80-column default (as report/terminal.py does).
    if not console.is_terminal:
        console = Console(file=console.file, width=140, color_system=None)
    console.print(compare_table(result, run_a, run_b))


def _optional(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_sensitivity(result: dict[str, Any], console: Console, out: str | None = None) -> None:
    """`compsafe sensitivity`: worst modules by output error, blocks by selectivity, the head scan."""
    table = Table(title=f"modules with the largest output error ({escape(result['recipe'])})")
    for column in ("module", "rel. weight error", "rel. output error"):
        table.add_column(column)
    for row in result["modules"][:8]:
        table.add_row(row["name"], f"{row['relative_error']:.4f}", _optional(row["output_error"], ".4f"))
    console.print(table)
    scan = result["blocks"]
    base = scan["base"]
    table = Table(title=f"blocks by safety damage per capability damage (base margin {base['mean_margin']:+.3f})")
    for column in ("block", "Δ margin (nats)", "Δ log ppl", "selectivity", "fast rate", "judged rate"):
        table.add_column(column)
    by_block = {row["block"]: row for row in scan["blocks"]}
    for block in scan["ranked_by_selectivity"][:10]:
        row = by_block[block]
        table.add_row(
            str(block),
            f"{-row['safety_damage']:+.3f}",
            f"{row['capability_damage']:+.4f}",
            f"{row['selectivity']:.1f}",
            f"{row['fast_refusal_rate']:.3f}",
            _optional(row["judged_refusal_rate"], ".3f"),
        )
    console.print(table)
    validation = scan.get("fast_signal_validation") or {}
    if validation:
        def rho(value: float | None) -> str:  # None: one side is constant across the variants (no ranking)
            return "undefined (constant)" if value is None else f"{value:+.3f}"

        console.print(
            f"fast signal vs judged refusal across {validation.get('n_variants')} per-block variants: Spearman "
            f"margin {rho(validation.get('spearman_margin'))}, fast rate {rho(validation.get('spearman_fast_rate'))}",
            highlight=False,
        )
    if "heads" in result:
        table = Table(title="heads whose ablation most lowers the refusal margin")
        for column in ("head", "Δ margin (nats)", "Δ fast rate", "judged rate", "attribution"):
            table.add_column(column)
        for row in result["heads"]["ranked"][:8]:
            table.add_row(
                f"{row['block']}.{row['head']}",
                f"{row['margin_change']:+.3f}",
                f"{row['fast_rate_change']:+.3f}",
                _optional(row["judged_refusal_rate"], ".3f"),
                _optional(row["attribution"], "+.3f"),
            )
        console.print(table)
    console.print(f"{result['seconds']:.0f} s" + (f"  ·  wrote {out}" if out else ""), markup=False, highlight=False)


def print_mitigation(result: dict[str, Any], console: Console, out: str | None = None) -> None:
    """`compsafe mitigate`: the Pareto front, the held-out confirmation and the chosen recipe."""
    table = Table(title="Pareto front: size vs refusal rate (validation) vs perplexity")
    for column in ("recipe", "bits/weight", "refusal rate", "perplexity"):
        table.add_column(column)
    for point in result["pareto_front"]:
        bits, rate, ppl = point["bits"], point["refusal_rate"], point["perplexity"]
        table.add_row(escape(point["recipe"]), f"{bits:.3f}", f"{rate:.3f}", f"{ppl:.3f}")
    console.print(table)
    table = Table(title="held-out confirmation (generated + judged)")
    for column in ("model", "recipe", "bits/weight", "judged refusal", "mean margin", "perplexity"):
        table.add_column(column)
    for label, row in result["heldout"].items():
        bits = "16 (base)" if label == "base" else f"{row['bits']:.3f}"
        table.add_row(
            escape(label),
            escape(row.get("recipe", "-")),
            bits,
            f"{row['judged_refusal_rate']:.3f}",
            f"{row['mean_margin']:+.3f}",
            f"{row['perplexity']:.3f}",
        )
    console.print(table)
    search = result["search"]
    verdict = "within tolerance" if search["met_tolerance"] else f"tolerance NOT met (stopped: {search['stop_reason']})"
    console.print(
        f"recipe: {result['recipe_out']}  ·  {result['effective_bits_per_weight']:.3f} bits/weight  ·  {verdict} on "
        f"the validation split  ·  {result['seconds']:.0f} s" + (f"  ·  wrote {out}" if out else ""),
        markup=False,
        highlight=False,
    )


def print_judge_scores(scores: list[Any], console: Console) -> None:
    """`compsafe judges`: three-way agreement of each refusal judge with people and toxicity scorer accuracy,
    with 95% Wilson intervals (wide and colourless when not on a terminal)."""
    out = console if console.is_terminal else Console(file=console.file, width=170, color_system=None)
    refusal = [s for s in scores if s.task == "refusal"]
    for dataset in dict.fromkeys(s.dataset for s in refusal):  # the whole set, then its held-out slice
        table = Table(title=f"refusal judges on {dataset}: three-way agreement with people, 95% Wilson CIs")
        for column in ("judge", "n", "accuracy", "refused", "complied", "neither", "hard cases", "degenerate→neither"):
            table.add_column(column, justify="left" if column == "judge" else "right")
        for s in (s for s in refusal if s.dataset == dataset):
            per_class = [_rate_cell(s.per_class[label]) for label in ("refused", "complied", "neither")]
            table.add_row(s.judge, str(s.overall.n), _rate_cell(s.overall), *per_class, _rate_cell(s.hard),
                          _rate_cell(s.degenerate_to_neither))
        out.print(table)
    table = Table(title="toxicity scorers: accuracy at p >= 0.5 on items they were not trained on, 95% Wilson CIs")
    for column in ("scorer", "data", "n", "accuracy", "toxic", "non-toxic", "note"):
        table.add_column(column, justify="right" if column in ("n", "accuracy", "toxic", "non-toxic") else "left")
    for s in (s for s in scores if s.task == "toxicity"):
        cells = [_rate_cell(s.per_class[k], ci=False) for k in ("toxic", "non-toxic")]
        table.add_row(s.judge, s.dataset, str(s.overall.n), _rate_cell(s.overall), *cells, s.note)
    out.print(table)


def _rate_cell(counted: Any, ci: bool = True) -> str:
    """'0.912 [0.88, 0.94]' (or without the interval); '-' when there is nothing to count."""
    from compsafe.analysis.paired import wilson_interval

    if counted is None or not counted.n:
        return "-"
    if not ci:
        return f"{counted.rate:.3f} ({counted.n})"
    interval = wilson_interval(counted.correct, counted.n)
    return f"{interval.estimate:.3f} [{interval.low:.2f}, {interval.high:.2f}]"


def print_profiles(profiles: list[tuple[Any, Any]], console: Console) -> None:
    """`compsafe profiles`: probes, variants and gate rules of each (profile, policy)."""
    table = Table(title="threat-model profiles (compsafe run --profile NAME)")
    for column in ("profile", "probes", "variants", "gate rules"):
        table.add_column(column)
    for p, policy in profiles:
        rules = "\n".join(rule.describe() for rule in policy.rules)
        table.add_row(p.name, ", ".join(p.probes), ", ".join(p.variants), rules)
    console.print(table)
    for p, _ in profiles:
        console.print(f"[bold]{p.name}[/]: {p.description}", highlight=False)
