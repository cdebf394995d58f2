"""One weight file's entry in lipbench's registry (lipbench.weights).

A module of its own, importing nothing of lipbench: model packages and plug-ins declare
their files with it (`WEIGHT_FILES = (WeightFile(...), ...)`) and the registry imports
those declarations while it is built, so a declaration must not import the registry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class WeightFile:
    name: str  # file name, as the upstream tools expect it
    description: str
    needed_by: tuple[str, ...]  # metric keys or model names
    source: str  # the repository (and path) that defines the file
    url: str | None = None  # None: no direct download; `manual` says how to get it
    sha256: str | None = None  # the published file's hash, when known
    manual: str = ""
    format: str = "torch"  # "torch" (torch.save), "torchscript" (torch.jit.save) or "dlib"
    loader: str = ""  # "module:function" building lipbench's network from the file (path -> object, on the CPU)
    # a file too large to load for a check (verify reads its container and hash only) and
    # to draw a stand-in for by default (`weights random` writes it only when named)
    large: bool = False
    # "module:function" writing a seeded random file in the real format, function(path, seed),
    # for `lipbench weights random` (files of lipbench's own networks have theirs in random_weights)
    stand_in: str = ""

    @property
    def hash_prefix(self) -> str | None:
        """torch.hub convention: the first hex digits of the sha256 are in the file name."""
        found = re.search(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$", self.name)
        return found.group(1) if found else None

    def how_to_get(self) -> str:
        if self.url:
            return f"lipbench weights fetch {self.name}"
        return self.manual or f"download it from {self.source}"

    def fix(self) -> str:
        """What to do about a bad copy of this file."""
        return f"get a good copy with: {self.how_to_get()}" if self.url else f"get a good copy: {self.how_to_get()}"
