"""Published numbers of the paper's baselines, each with its source and a mark (see docs/published_numbers.md).

Marks: ``""`` (stated in the cited source: a repository README table or figure, an issue thread, or a paper's
abstract), ``"unverified"`` (only quoted second-hand, e.g. by users in an issue or by a benchmark listing, or part of
the value has no citable source; the note says what is known), ``"derived"`` (computed from a relative claim, not
read).  FIDs of these papers mix protocols (PyTorch-FID with torchvision weights vs TF-FID, different real sets and
sample counts; docs/evaluation.md#why-published-fids-disagree): none is directly comparable with this project's
FID, and the tables say so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Published:
    dataset: str          # cub | coco | flowers
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
    # CUB, 256 x 256 (docs/published_numbers.md#cub)
    Published("cub", "AttnGAN (paper)", 4.36, 0.03, 23.98, 67.82, 4.43,
              "MinfengZhu/DM-GAN README, Performance table (AttnGAN paper values); same values in the "
              "sidward14/Style-AttnGAN README table",
              note="PyTorch-FID; TF-FID 14.01"),
    Published("cub", "DM-GAN (paper)", 4.75, 0.07, 16.09, 72.31, 0.91,
              "MinfengZhu/DM-GAN README, Performance table", note="released model: 4.71, 15.34 (TF-FID 11.91), 74.48"),
    Published("cub", "AttnGAN+CL (T2I_CL)", 4.42, 0.05, 16.34, 69.64, 0.63,
              "results figure of the priyankaupadhyay090/Master_thesis_text_to_image_with_CL README, citing "
              "T2I_CL (arXiv 2107.02423)"),
    Published("cub", "DM-GAN+CL (T2I_CL)", 4.77, 0.05, 14.38, 78.99, 0.66,
              "results figure of the priyankaupadhyay090/Master_thesis_text_to_image_with_CL README, citing "
              "T2I_CL (arXiv 2107.02423)"),
    Published("cub", "DF-GAN (CVPR 2022)", 5.10, None, 14.81, None, None,
              "tobran/DF-GAN README, Performance table (FID); IS 5.1 only as quoted by users in tobran/DF-GAN#8",
              "unverified", "IS second-hand, std unknown; released model FID 12.10"),
    Published("cub", "SSA-GAN (paper)", 5.17, 0.08, 15.61, 86.7, 0.91,
              "results figure of the wtliao/text2image README (IS, FID); results figure of the thesis README "
              "(R-precision, 'SSA-GAN*'); wtliao/text2image#15 quotes R-precision '86%' for the 5th arXiv version"),
    Published("cub", "SSA-GAN (released model, re-evaluated)", 5.13, 0.06, 15.60, 73.55, 0.68,
              "wtliao/text2image#15 (measured by the thesis author with the DM-GAN R-precision code)"),
    Published("cub", "SSA-GAN + fake-to-fake (thesis)", 4.85, 0.08, 15.10, 84.08, 0.73,
              "results figure of the priyankaupadhyay090/Master_thesis_text_to_image_with_CL README",
              note="R-precision with its own DAMSM+CL encoders"),
    Published("cub", "Style-AttnGAN", 4.33, 0.09, 25.60, None, None,
              "sidward14/Style-AttnGAN README, quantitative table", note="pytorch-fid against all CUB images"),
    Published("cub", "2312.10854 (AttnGAN + style blocks + f2f + f2r)", None, None, None, None, None,
              "arXiv 2312.10854 abstract: 'improves the qualitative results on AttnGAN with style blocks on the CUB "
              "dataset'", note="no numbers available"),
    Published("cub", "2312.10854 (SSA-GAN + f2f + f2r)", None, None, None, None, None,
              "arXiv 2312.10854 abstract: no CUB numbers", note="not available"),
    # COCO, 256 x 256 (docs/published_numbers.md#coco)
    Published("coco", "AttnGAN (paper)", 25.89, 0.47, 35.49, 85.47, 3.69,
              "MinfengZhu/DM-GAN README (FID, R-precision); IS 25.89 as quoted by users in taoxugit/AttnGAN#46",
              "unverified", "IS second-hand and its std 0.47 without a source found (the DM-GAN README's IS cell "
              "for this row repeats DM-GAN's FID 32.64 ± 0.57); TF-FID 29.53"),
    Published("coco", "DM-GAN (paper)", 30.49, 0.57, 32.64, 88.56, 0.28, "MinfengZhu/DM-GAN README, Performance table",
              note="released model: 32.43, 26.55 (TF-FID 24.24), 89.52"),
    Published("coco", "AttnGAN+CL (T2I_CL)", None, None, 24.98, None, None,
              "T2I_CL abstract (arXiv 2107.02423): 'boosts the FID significantly by 29.60% over AttnGAN'", "derived",
              "35.49 x (1 - 0.2960), if the base is AttnGAN's published 35.49"),
    Published("coco", "DM-GAN+CL (T2I_CL)", None, None, 25.47, None, None,
              "T2I_CL abstract (arXiv 2107.02423): 'by 21.96% over DM-GAN'", "derived",
              "32.64 x (1 - 0.2196), if the base is DM-GAN's published 32.64"),
    Published("coco", "DF-GAN (CVPR 2022)", None, None, 19.32, None, None, "tobran/DF-GAN README, Performance table",
              note="released model 15.41"),
    Published("coco", "SSA-GAN (paper)", None, None, 19.37, None, None, "results figure of the wtliao/text2image README"),
    Published("coco", "DALL-E (zero-shot, 12B)", 17.9, None, 27.5, None, None,
              "benchmark listings for 'Zero-Shot Text-to-Image Generation' (arXiv 2102.12092) give MS-COCO FID 27.5; "
              "no source found for IS 17.9", "unverified",
              "not read in the DALL-E paper itself; a 2024 survey table lists FID 28.0"),
    Published("coco", "Lafite (supervised)", 32.34, None, 8.12, None, None,
              "Papers-with-Code archive listing for LAFITE (arXiv 2111.13792), entry 'Lafite'", "unverified",
              "not read in the Lafite paper's tables; zero-shot Lafite is listed at FID 26.94"),
    Published("coco", "2312.10854 (SSA-GAN + f2f + f2r)", None, None, 10.85, None, None,
              "arXiv 2312.10854 abstract: 'outperforms the FID score of SSAGAN model by 44%' (19.37 x 0.56)", "derived",
              "the base of the 44% is not stated; the paper's tables are not available to this project"),
    # Oxford-102 flowers, 256 x 256 (docs/published_numbers.md#oxford-102-flowers): not a dataset of the paper
    Published("flowers", "StackGAN-v2 (StackGAN++)", 3.26, None, 48.68, None, None,
              "Papers-with-Code archive listing for StackGAN++ (arXiv 1710.10916), 'Oxford 102 Flowers' entries",
              "unverified", "not read in the paper's table; IS std not listed"),
    Published("flowers", "StackGAN-v1 (listed with StackGAN++)", None, None, 55.28, None, None,
              "Papers-with-Code archive listing for StackGAN++ (arXiv 1710.10916), 'Oxford 102 Flowers' entries",
              "unverified", "not read in the paper's table"),
)


def published(dataset: str | None = None) -> list[Published]:
    return [p for p in PUBLISHED if dataset is None or p.dataset == dataset]
