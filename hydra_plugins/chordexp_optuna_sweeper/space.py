"""``hydra.sweeper.params`` (and sweep overrides on the command line) as Optuna
distributions, in the spelling of hydra-optuna-sweeper: ``choice(a, b)`` is
categorical, ``interval(lo, hi)`` a uniform float (``tag(log, interval(...))``
log-uniform; Hydra reads its ends as floats), ``range(start, stop[, step])`` the
integers (or float steps) from start below stop; a plain value is fixed for every trial."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple


class SearchSpaceError(ValueError):
    """A search-space entry Optuna cannot sample; the message names it."""


def parse_search_space(entries: Sequence[str]) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """``(distributions, fixed)`` from ``key=value`` overrides; a later entry for a key
    replaces an earlier one (the command line beats the preset)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    distributions: Dict[str, Any] = {}
    fixed: Dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(list(entries)):
        key = override.get_key_element()
        distributions.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            distributions[key] = distribution_of(override)
        else:
            fixed[key] = override.get_value_element_as_str()
    return distributions, fixed


def distribution_of(override: Any) -> Any:
    """The Optuna distribution of one sweep override."""
    from hydra.core.override_parser.types import ChoiceSweep
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    key = override.get_key_element()
    value = override.value()
    if override.is_choice_sweep() and isinstance(value, ChoiceSweep) or (override.is_range_sweep() and value.shuffle):
        return CategoricalDistribution(_choices(override, key))
    if override.is_range_sweep():
        values = list(override.sweep_iterator())
        if not values or value.step <= 0:
            raise SearchSpaceError(f"hydra.sweeper.params.{key}: {override.input_line} holds no increasing values")
        if all(isinstance(v, int) and not isinstance(v, bool) for v in (value.start, value.stop, value.step)):
            return IntDistribution(int(values[0]), int(values[-1]), step=int(value.step))
        return FloatDistribution(float(values[0]), float(values[-1]), step=float(value.step))
    if override.is_interval_sweep():
        log = "log" in value.tags
        if not value.start < value.end or (log and value.start <= 0):
            raise SearchSpaceError(
                f"hydra.sweeper.params.{key}: {override.input_line} needs {'0 < ' if log else ''}start < end"
            )
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise SearchSpaceError(
        f"hydra.sweeper.params.{key}: {override.input_line} is not a search space "
        f"Optuna can sample; use choice(...), interval(...), tag(log, interval(...)) or range(...)"
    )


def _choices(override: Any, key: str) -> List[Any]:
    from hydra.core.override_parser.types import Transformer

    choices = list(override.sweep_iterator(transformer=Transformer.encode))
    for choice in choices:
        if not isinstance(choice, (str, int, float, bool, type(None))):
            raise SearchSpaceError(f"hydra.sweeper.params.{key}: choice {choice!r} is not a str, number, bool or null")
    return choices
