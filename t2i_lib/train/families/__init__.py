"""The model families GAN training knows, one module each (build, generate, D heads, step).

Adding a family: a module here that defines ``FAMILY = t2i_lib.train.step.Family(...)``, and one line below.
"""

from __future__ import annotations

from ..step import Family
from . import attngan, ssagan, style_attngan

FAMILIES: dict[str, Family] = {f.name: f for f in (ssagan.FAMILY, attngan.FAMILY, style_attngan.FAMILY)}
