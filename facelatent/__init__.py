"""facelatent: face datasets -> StyleGAN latents -> directions, AU classifiers, synthetic identities."""

__version__ = "0.1.0"
