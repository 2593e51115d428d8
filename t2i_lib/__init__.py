"""t2i-consistency: a reproducibility study of distribution-sensitive contrastive losses for GAN text-to-image.

The library is thin and importable; notebooks narrate over it.  Sub-packages:

- ``t2i_lib.config``   frozen dataclasses, experiments, profiles, strict overrides, hashing
- ``t2i_lib.data``     tokenizer/vocabulary, canonical dataset, synthetic ``caption-shapes``, AttnGAN adapters
- ``t2i_lib.report``   figures and tables
- ``t2i_lib.utils``    seeding, atomic I/O, logging/progress, environment capture
"""

__version__ = "0.1.0"
