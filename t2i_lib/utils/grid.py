"""The layout of a run's sample grid: written by ``t2i_lib.train.gan.sample_grid`` (``torchvision``'s
``make_grid``), cut back into its tiles by ``t2i_lib.report.gan_report.split_grid``."""

GRID_NROW = 8  # images per row
GRID_PADDING = 2  # pixels around each image
