"""Lazy name -> class registries: nothing is imported until a name is used."""

from __future__ import annotations

import difflib
import importlib


class Registry:
    def __init__(self, kind: str, base: type, entries: dict[str, str], allow_paths: bool = True):
        self.kind, self.base, self.entries, self.allow_paths = kind, base, dict(entries), allow_paths

    def names(self) -> list[str]:
        return sorted(self.entries)

    def resolve(self, name: str) -> type:
        """The class for a registered name, or for 'package.module:Class' when allowed."""
        target = self.entries.get(name) or (name if self.allow_paths and ":" in name else None)
        if target is None:
            close = difflib.get_close_matches(name, self.entries, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            extra = "; or give 'package.module:Class'" if self.allow_paths else ""
            raise KeyError(f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(self.names())}{extra}.")
        module_name, _, class_name = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise KeyError(f"{self.kind} {name!r}: cannot import {target} ({exc})") from exc
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise KeyError(f"{self.kind} {name!r}: {target} is not a {self.base.__name__}")
        return cls
