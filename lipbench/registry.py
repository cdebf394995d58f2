"""Lazy name -> class registries: nothing is imported until a name is used."""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata

from lipbench.errors import UnknownNameError


class Registry:
    """`entry_point_group`: installed packages add entries through that entry-point group
    (in their pyproject: [project.entry-points."lipbench.models"] my_model = "pkg.mod:Class")."""

    def __init__(
        self,
        kind: str,
        base: type,
        entries: dict[str, str],
        allow_paths: bool = True,
        entry_point_group: str | None = None,
    ):
        self.kind, self.base, self.allow_paths = kind, base, allow_paths
        self.builtin, self.entry_point_group = dict(entries), entry_point_group

    @property
    def entries(self) -> dict[str, str]:
        found = {}
        if self.entry_point_group:
            found = {ep.name: ep.value for ep in importlib.metadata.entry_points(group=self.entry_point_group)}
        return {**found, **self.builtin}  # a plug-in cannot shadow a built-in name

    def names(self) -> list[str]:
        return sorted(self.entries)

    def resolve(self, name: str) -> type:
        """The class for a registered name, or for 'package.module:Class' when allowed."""
        target = self.entries.get(name) or (name if self.allow_paths and ":" in name else None)
        if target is None:
            close = difflib.get_close_matches(name, self.entries, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            extra = "; or give 'package.module:Class'" if self.allow_paths else ""
            raise UnknownNameError(f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(self.names())}{extra}.")
        module_name, _, class_name = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise UnknownNameError(f"{self.kind} {name!r}: cannot import {target} ({exc})") from exc
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise UnknownNameError(f"{self.kind} {name!r}: {target} is not a {self.base.__name__}")
        return cls
