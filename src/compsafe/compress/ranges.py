"""Recipe ranges: ``mag-10..60/10`` is the sweep mag-10, mag-20, ..., mag-60.

Why: how bias and safety change as the compression rate grows (seed 002) needs one variant per rate; writing
six recipes by hand invites typos and uneven grids. A range is ``PREFIX START..STOP/STEP SUFFIX`` around one
number of any recipe (``wanda-20..60/20``, ``sparsegpt-10..50/20``, ``mag-10..50/20-global``,
``lowrank-r0.25..0.75/0.25``); STOP must be reached exactly, so a typo is an error rather than a silent grid.
Every expanded name must itself parse as a recipe.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from compsafe.errors import RecipeError

_NUMBER = r"\d+(?:\.\d+)?"
RANGE = re.compile(
    rf"(?P<prefix>.*?)(?P<start>{_NUMBER})\.\.(?P<stop>{_NUMBER})(?:/(?P<step>[^/]*?))?(?P<suffix>[-+].*)?"
)
MAX_RANGE_LENGTH = 50  # more variants than this in one run is a mistake, not a sweep
EXAMPLE = "mag-10..60/10"


def is_range(recipe: str) -> bool:
    """Whether ``recipe`` is written as a range (``..`` after a number), not as one recipe."""
    return RANGE.fullmatch(recipe.strip()) is not None


def _decimal(text: str, what: str, recipe: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise RecipeError(f"range {recipe!r}: {what} {text!r} is not a number (write it like {EXAMPLE})")
    return value


def _places(*texts: str) -> int:
    return max(len(t.partition(".")[2]) for t in texts)


def expand_range(recipe: str) -> list[str]:
    """The recipes a range names, in increasing order; ``[recipe]`` when it is not a range.

    Raises a one-line ``RecipeError`` for a missing or non-positive step, STOP below START, a STOP that the
    steps do not land on, more than ``MAX_RANGE_LENGTH`` recipes, or an expanded name that is no recipe.
    """
    text = recipe.strip()
    match = RANGE.fullmatch(text)
    if match is None:
        return [recipe]
    prefix, suffix = match["prefix"], match["suffix"] or ""
    start_text, stop_text, step_text = match["start"], match["stop"], match["step"]
    if not step_text:
        shape = f"{prefix}{start_text}..{stop_text}/STEP{suffix}"
        raise RecipeError(f"range {text!r} needs a step: {shape}, e.g. {EXAMPLE}")
    start, stop = _decimal(start_text, "start", text), _decimal(stop_text, "stop", text)
    step = _decimal(step_text, "step", text)
    if step <= 0:
        raise RecipeError(f"range {text!r}: the step must be > 0, e.g. {EXAMPLE}")
    if stop < start:
        raise RecipeError(f"range {text!r}: the stop {stop_text} is below the start {start_text}")
    count, remainder = divmod(stop - start, step)
    if remainder != 0:
        last = start + count * step
        raise RecipeError(
            f"range {text!r}: steps of {step_text} from {start_text} do not reach {stop_text} (they end at {last}); "
            f"make STOP - START a multiple of STEP"
        )
    if count + 1 > MAX_RANGE_LENGTH:
        raise RecipeError(f"range {text!r} names {count + 1} recipes, more than {MAX_RANGE_LENGTH}: use a larger step")
    places = _places(start_text, stop_text, step_text)
    names = [f"{prefix}{start + i * step:.{places}f}{suffix}" for i in range(int(count) + 1)]
    from compsafe.compress.registry import parse_recipe

    for name in names:
        try:
            parse_recipe(name)
        except RecipeError as exc:
            raise RecipeError(f"range {text!r} expands to {name!r}, which is not a recipe: {exc}") from None
    return names


def expand_ranges(recipes: Sequence[str]) -> list[str]:
    """Every range in ``recipes`` replaced by the recipes it names (the others kept, order kept)."""
    return [name for recipe in recipes for name in expand_range(recipe)]
