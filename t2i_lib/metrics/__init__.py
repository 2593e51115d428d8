"""Metric names (use these constants, never hand-typed strings) and metric implementations.

- :mod:`t2i_lib.metrics.fidelity`: FID / KID / IS through torch-fidelity, offline weights resolution.
- :mod:`t2i_lib.metrics.r_precision`: R-precision with the DAMSM encoders.
"""

from .fidelity import FID, IS_MEAN, IS_STD, KID_MEAN, KID_STD
from .r_precision import R_PRECISION, R_PRECISION_STD

__all__ = ["FID", "KID_MEAN", "KID_STD", "IS_MEAN", "IS_STD", "R_PRECISION", "R_PRECISION_STD"]
