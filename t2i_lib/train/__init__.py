"""Training loops (DAMSM pretraining; GAN training) and checkpoints."""
