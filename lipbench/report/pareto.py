"""Pareto fronts: the rows no other row beats on both axes.

Directions come from each column's `higher_is_better`. A row missing either value is
'missing' (neither on the front nor dominated); identical rows do not dominate each
other, so ties are all on the front.
"""

from __future__ import annotations

from lipbench.report.schema import is_finite_number

FRONT, DOMINATED, MISSING = "front", "dominated", "missing"


def pareto_status(points: dict[str, tuple], x_higher: bool = True, y_higher: bool = True) -> dict[str, str]:
    """For each name: 'front', 'dominated' or 'missing'."""
    sign = (1 if x_higher else -1, 1 if y_higher else -1)
    valid = {
        k: (sign[0] * v[0], sign[1] * v[1])
        for k, v in points.items()
        if is_finite_number(v[0]) and is_finite_number(v[1])
    }
    status = {k: MISSING for k in points}
    for name, (x, y) in valid.items():
        beaten = any(ox >= x and oy >= y and (ox > x or oy > y) for other, (ox, oy) in valid.items() if other != name)
        status[name] = DOMINATED if beaten else FRONT
    return status


def pareto_front(points: dict[str, tuple], x_higher: bool = True, y_higher: bool = True) -> set[str]:
    return {k for k, s in pareto_status(points, x_higher, y_higher).items() if s == FRONT}
