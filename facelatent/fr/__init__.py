"""Stage: face recognition trained on an identity-labelled set and judged the way the field does (the model room:
config, heads, model, LightningModule, data, training, job).

Files:
- `config.py`: The `fr_training:` config section as a plain dataclass.
- `heads.py`: Margin heads over a normalised class-weight matrix: ArcFace, CosFace and AdaFace.
- `model.py`: The FR network (arcface_torch IResNet backbone + margin head), the batch norm that spans DDP
  processes, and the backbone written as our safetensors.
- `data.py`: Identity-labelled images (a crops manifest or aligned HDF5 shards) and the sampler that gives N
  processes the one global batch order.
- `lightning_module.py`: LightningModule: margin-head cross-entropy, SGD with momentum, lr x0.1 at milestones.
- `train.py`: Trainer, resume key and checkpoint check, per-epoch log lines, merged CSV logs.
- `job.py`: the train_fr job (train, resume after a kill, write the trained and the initial backbone).
"""
