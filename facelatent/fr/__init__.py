"""Stage: face recognition trained on an identity-labelled set (the model room: config, heads, model,
LightningModule, data, training) and evaluated the way the field reports it (verification benchmarks).

Files:
- `config.py`: the `fr.training:` config section as a plain dataclass.
- `heads.py`: margin heads over a normalised class-weight matrix: ArcFace, CosFace and AdaFace.
- `model.py`: the FR network (arcface_torch IResNet backbone + margin head), the batch norm that spans DDP
  processes, and the backbone written as our safetensors.
- `data.py`: identity-labelled images (a crops manifest or aligned HDF5 shards) and the sampler that gives N
  processes the one global batch order.
- `augment.py`: the recipe's crop / low-resolution / photometric augmentations, seeded per sample.
- `lightning_module.py`: LightningModule: margin-head cross-entropy, SGD with momentum, lr x0.1 at milestones.
- `train.py`: Trainer, resume key and checkpoint check, per-epoch log lines, merged CSV logs.
- `binfile.py`: insightface verification `.bin` files read (restricted unpickler, nothing executed) and written.
- `pairs.py`: LFW-style `pairs.txt` lists over a folder of aligned crops, read into the same pair set.
- `protocol.py`: insightface's protocol: mirror embeddings, squared distances, 10-fold accuracy, TAR@FAR.
- `plan.py`: which subjects of a real dataset are held out for benchmarks and which train (no torch: the
  Snakefile imports it).
- `heldout.py`: the pairs and images of a benchmark drawn from held-out subjects of an aligned dataset; an aligned
  training set's subjects.
- `evaluate.py`: a benchmark read from either form, a model's mirrored embeddings of it, its TSV rows.
- `compare.py`: every model's evaluation in the papers' table (rows: training sets) and a bar plot.
- `job.py`: make_benchmark_bin, train_fr, evaluate_fr (every model on every benchmark, a TSV) and compare_fr.
"""
