"""Stage: action-unit classifiers on CK+ latents (the model room: model, LightningModule, data, evaluation).

Files:
- `config.py`: The `au:` config section as a plain dataclass (below the model, the LightningModule and the data module).
- `data.py`: CK+ AU labels from merged latents: AU selection, neutral frames, subject-disjoint seeded splits.
- `evaluate.py`: Per-AU metrics a FACS researcher trusts: support, ROC-AUC, AP, F1 at a threshold tuned on validation.
- `job.py`: the train_au_classifier, predict_aus and predict_synthetic_aus jobs (Lightning training, subject-disjoint
  evaluation against a logistic baseline, AU probabilities per latent).
- `lightning_module.py`: LightningModule that trains the AU MLP: BCE with per-AU pos_weight, Adam, lr halved
  every N epochs.
- `model.py`: The AU network: a plain MLP over flattened W / W+ latents (one logit per kept AU).
"""
