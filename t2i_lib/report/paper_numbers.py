"""Published numbers of the paper's baselines, each with its source and, where REFERENCE.md §8 has one, a mark.

Marks: ``""`` (read in the cited source), ``"unverified"`` (from memory or an unconfirmed thread),
``"derived"`` (computed from a relative claim, not read).  FIDs of these papers mix protocols (PyTorch-FID with
torchvision weights vs TF-FID, different real sets and sample counts; REFERENCE.md §7.1): none is directly
comparable with this project's FID, and the tables say so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Published:
    dataset: str          # cub | coco
    model: str
    is_mean: float | None
    is_std: float | None
    fid: float | None
    r_precision: float | None      # percent
    r_precision_std: float | None
    source: str
    mark: str = ""                 # "" | "unverified" | "derived"
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


PUBLISHED: tuple[Published, ...] = (
    # CUB, 256 x 256 (REFERENCE.md §8.1)
    Published("cub", "AttnGAN (paper)", 4.36, 0.03, 23.98, 67.82, 4.43,
              "DM-GAN README; Style-AttnGAN README; thesis results.PNG; SSA-GAN results.png",
              note="PyTorch-FID; TF-FID 14.01"),
    Published("cub", "DM-GAN (paper)", 4.75, 0.07, 16.09, 72.31, 0.91, "DM-GAN README; thesis; SSA-GAN fig"),
    Published("cub", "AttnGAN+CL (T2I_CL)", 4.42, 0.05, 16.34, 69.64, 0.63, "thesis results.PNG (cites T2I_CL)"),
    Published("cub", "DM-GAN+CL (T2I_CL)", 4.77, 0.05, 14.38, 78.99, 0.66, "thesis results.PNG"),
    Published("cub", "DF-GAN (CVPR 2022)", 5.10, None, 14.81, None, None,
              "DF-GAN README (FID); tobran/DF-GAN#8 (IS)", "unverified", "IS std unknown"),
    Published("cub", "SSA-GAN (paper)", 5.17, 0.08, 15.61, 86.7, 0.91,
              "SSA-GAN results.png (IS, FID); thesis / wtliao/text2image#15 (R-precision)"),
    Published("cub", "SSA-GAN (released model, re-evaluated)", 5.13, 0.06, 15.60, 73.55, 0.68,
              "wtliao/text2image#15; thesis 'SSA-GAN#'"),
    Published("cub", "SSA-GAN + fake-to-fake (thesis)", 4.85, 0.08, 15.10, 84.08, 0.73, "thesis results.PNG",
              note="R-precision with its own DAMSM+CL encoders"),
    Published("cub", "Style-AttnGAN", 4.33, 0.09, 25.60, None, None, "Style-AttnGAN README",
              note="pytorch-fid against all CUB images"),
    Published("cub", "2312.10854 (AttnGAN + style blocks + f2f + f2r)", None, None, None, None, None,
              "abstract only: 'improves the qualitative results'", note="no numbers available"),
    Published("cub", "2312.10854 (SSA-GAN + f2f + f2r)", None, None, None, None, None, "not available"),
    # COCO, 256 x 256 (REFERENCE.md §8.2, §8.3)
    Published("coco", "AttnGAN (paper)", 25.89, 0.47, 35.49, 85.47, 3.69,
              "DM-GAN README (FID, R); taoxugit/AttnGAN#46 (IS)", "unverified", "IS std unverified; TF-FID 29.53"),
    Published("coco", "DM-GAN (paper)", 30.49, 0.57, 32.64, 88.56, 0.28, "DM-GAN README"),
    Published("coco", "AttnGAN+CL (T2I_CL)", None, None, 24.98, None, None,
              "T2I_CL abstract: 'boosts FID by 29.60% over AttnGAN'", "derived", "if the base is 35.49"),
    Published("coco", "DF-GAN (CVPR 2022)", None, None, 19.32, None, None, "DF-GAN README"),
    Published("coco", "SSA-GAN (paper)", None, None, 19.37, None, None, "SSA-GAN results.png"),
    Published("coco", "DALL-E (zero-shot, 12B)", 17.9, None, 27.5, None, None, "Lafite paper table, from memory",
              "unverified"),
    Published("coco", "Lafite (supervised)", 32.34, None, 8.12, None, None, "Lafite paper, from memory",
              "unverified"),
    Published("coco", "2312.10854 (SSA-GAN + f2f + f2r)", None, None, 10.85, None, None,
              "abstract: 'outperforms the FID score of SSAGAN by 44%' (19.37 x 0.56)", "derived",
              "the DALL-E claim implies 9.12 instead; the baselines are unknown"),
)


def published(dataset: str | None = None) -> list[Published]:
    return [p for p in PUBLISHED if dataset is None or p.dataset == dataset]
