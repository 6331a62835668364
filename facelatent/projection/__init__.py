"""Stage: projecting aligned faces into the generator's latent space (W or W+), in resumable shards.

Files:
- `config.py`: The `projection:` config section as a plain dataclass (no torch: the CLI reads its defaults for its
  help).
- `encoder.py`: A convolutional encoder image -> w, trained on the generator's own samples, to start projection.
- `job.py`: The project_shard (one resumable shard: aligned in, latents out), merge_latents and train_encoder jobs.
- `losses.py`: Per-image projection losses: LPIPS with the NVlabs VGG16, FaceNet features, pixel MSE / L1.
- `project.py`: Batched GAN inversion following the NVlabs projector schedule exactly.
- `refine.py`: Levenberg-Marquardt refinement of projected latents, with a per-image similarity warp of the render.
"""
