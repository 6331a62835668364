"""The AU jobs. train_au_classifier: train with Lightning, evaluate on unseen subjects, compare with a logistic
baseline; predict_aus / predict_synthetic_aus: AU probabilities for every latent of a file."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import lightning as L
import numpy as np
import torch

from facelatent.au.config import AUConfig
from facelatent.au.data import AUDataModule, load_au_data
from facelatent.au.evaluate import evaluate, logistic_baseline, macro, plot_curves
from facelatent.au.lightning_module import AUClassifier
from facelatent.devices import pick_device
from facelatent.errors import InputFileError
from facelatent.pickle_safe import TORCH_SAFE_GLOBALS, refusal_reason
from facelatent.store import atomic_path, atomic_write_text, open_checked

log = logging.getLogger(__name__)


class LogEpochs(L.Callback):
    """One log line per epoch with the logged metrics (so the rule's log shows training progress)."""

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        metrics = {k: round(float(v), 5) for k, v in trainer.callback_metrics.items()}
        log.info("epoch %d: %s", trainer.current_epoch, metrics)


def load_au_classifier(path: str | Path) -> AUClassifier:
    """An AUClassifier checkpoint on CPU through torch's weights_only unpickler (the allow-list shared
    with `pickle_safe`): its hyper-parameters are plain types; a file naming anything else is refused."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "AU model checkpoint does not exist")
    try:
        with torch.serialization.safe_globals(TORCH_SAFE_GLOBALS):
            return AUClassifier.load_from_checkpoint(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputFileError(path, refusal_reason(exc)) from None
    except (KeyError, TypeError, RuntimeError, EOFError) as exc:
        raise InputFileError(
            path,
            f"not an AU classifier checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
        ) from None


def predict(model: AUClassifier, x: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(x).to(model.device))).cpu().numpy()


def train_au_classifier(
    *,
    latents_h5: str | Path,
    au: Mapping | AUConfig,
    model_ckpt: str | Path,
    metrics_json: str | Path,
    per_au_tsv: str | Path,
    roc_png: str | Path,
    pr_png: str | Path,
    device: str = "auto",
) -> dict:
    """Rule train_au_classifier: train on the latents' subject-disjoint splits (`au`: the `au:` config section),
    evaluate on the test subjects against a logistic baseline, write the checkpoint, tables and curves."""
    cfg = au if isinstance(au, AUConfig) else AUConfig(**{k: v for k, v in au.items() if k != "dataset"})
    accelerator = "gpu" if pick_device(device).type == "cuda" else "cpu"
    for path in (model_ckpt, metrics_json, per_au_tsv, roc_png, pr_png):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True)
    data = load_au_data(latents_h5, cfg.min_active, cfg.use_neutral, cfg.seed, tuple(cfg.split))
    train = data.split == "train"
    pos = data.y[train].sum(0)
    pos_weight = ((train.sum() - pos) / np.clip(pos, 1, None)).tolist()
    model = AUClassifier(
        int(np.prod(data.x.shape[1:])), data.aus, tuple(cfg.widths), cfg.dropout, cfg.lr, cfg.lr_halve_every, pos_weight
    )
    log.info(
        "AUs kept: %s; samples train/val/test: %d/%d/%d",
        data.aus,
        *(int((data.split == s).sum()) for s in ("train", "val", "test")),
    )
    with tempfile.TemporaryDirectory() as tmp:
        best = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp, monitor="val_loss", save_top_k=1, filename="best")
        trainer = L.Trainer(
            max_epochs=cfg.max_epochs,
            accelerator=accelerator,
            devices=1,
            deterministic=True,
            logger=False,
            enable_model_summary=False,
            log_every_n_steps=1,
            callbacks=[best, L.pytorch.callbacks.EarlyStopping("val_loss", patience=cfg.patience), LogEpochs()],
        )
        trainer.fit(model, datamodule=AUDataModule(data, cfg.batch_size, cfg.seed))
        model = load_au_classifier(best.best_model_path)
        with atomic_path(model_ckpt) as partial:
            shutil.copyfile(best.best_model_path, partial)

    flat = data.x.reshape(len(data.x), -1)
    masks = {s: data.split == s for s in ("train", "val", "test")}
    p_val, p_test = predict(model, data.x[masks["val"]]), predict(model, data.x[masks["test"]])
    b_val, b_test = logistic_baseline(
        flat[masks["train"]], data.y[masks["train"]], [flat[masks["val"]], flat[masks["test"]]], cfg.seed
    )
    y_val, y_test = data.y[masks["val"]], data.y[masks["test"]]
    table = evaluate(data.aus, y_val, p_val, y_test, p_test)
    base = evaluate(data.aus, y_val, b_val, y_test, b_test, prefix="baseline_")
    table = table.merge(base.drop(columns=["baseline_support"]), on="au")
    atomic_write_text(per_au_tsv, table.to_csv(sep="\t", index=False, float_format="%.4f"))
    metrics = {
        "aus": data.aus,
        "splits": {s: sorted(set(data.subjects[masks[s]].tolist())) for s in masks},
        "counts": {s: int(masks[s].sum()) for s in masks},
        "test": {
            "macro_roc_auc": macro(table, "roc_auc"),
            "baseline_macro_roc_auc": macro(table, "baseline_roc_auc"),
            "macro_average_precision": macro(table, "average_precision"),
            "baseline_macro_average_precision": macro(table, "baseline_average_precision"),
            "macro_f1": macro(table, "f1"),
            "baseline_macro_f1": macro(table, "baseline_f1"),
        },
        "best_val_loss": float(best.best_model_score) if best.best_model_score is not None else None,
        "epochs": int(trainer.current_epoch),
        "config": cfg.__dict__,
    }
    atomic_write_text(metrics_json, json.dumps(metrics, indent=2, default=float))
    plot_curves(data.aus, y_test, p_test, b_test, str(roc_png), str(pr_png))
    log.info(
        "test macro ROC-AUC %.4f (logistic baseline %.4f)",
        metrics["test"]["macro_roc_auc"],
        metrics["test"]["baseline_macro_roc_auc"],
    )
    return metrics


def latent_blocks(path: str | Path, block_rows: int = 4096) -> Iterator[tuple[np.ndarray, list[str]]]:
    """(w [rows, num_ws, w_dim], ids) of a merged latents file or a synthetic `samples.h5` (ids
    `identity/label`), `block_rows` rows at a time: memory holds one block, not the whole set."""
    with open_checked(path, ("facelatent.latents", "facelatent.samples")) as fh:
        samples = fh.attrs["format"] == "facelatent.samples"
        n = len(fh["identity" if samples else "ids"])
        for lo in range(0, n, block_rows):
            rows = slice(lo, lo + block_rows)
            w = fh["w"][rows]
            if samples:  # h5py's asstr() decodes the string columns
                identity, label = fh["identity"][rows], fh["label"].asstr()[rows]
                ids = [f"{int(i):05d}/{name}" for i, name in zip(identity, label, strict=True)]
                w = w[:, None, :] if w.ndim == 2 else w
            else:
                ids = list(fh["ids"].asstr()[rows])
            yield w, ids


def as_model_input(w: np.ndarray, in_features: int, path: str | Path, model_ckpt: str | Path) -> np.ndarray:
    """w [rows, num_ws, w_dim] flattened to the AU model's input; a W latent is broadcast to a W+ model's layers."""
    features = int(np.prod(w.shape[1:]))
    if features != in_features and in_features % features == 0 and w.shape[1] == 1:
        w = np.repeat(w, in_features // features, axis=1)
    if int(np.prod(w.shape[1:])) != in_features:
        raise InputFileError(path, f"latents have {features} features, the AU model {model_ckpt} expects {in_features}")
    return w.astype(np.float32)


def predict_aus(model_ckpt: str | Path, latents_h5: str | Path, out_tsv: str | Path, block_rows: int = 4096) -> None:
    """AU probabilities for every latent of a file (a merged latents file or synthetic samples), written as a TSV
    block by block (650,000 synthetic faces at W+ would be 24 GB at once)."""
    import pandas as pd

    model = load_au_classifier(model_ckpt)
    columns = [f"AU{a}" for a in model.hparams.aus]
    with atomic_path(out_tsv) as tmp, open(tmp, "w") as out:
        for first, (w, ids) in enumerate(latent_blocks(latents_h5, block_rows)):
            probs = predict(model, as_model_input(w, model.hparams.in_features, latents_h5, model_ckpt))
            block = pd.DataFrame(probs, columns=columns)
            block.insert(0, "id", ids)
            block.to_csv(out, sep="\t", index=False, header=first == 0, float_format="%.5f")


def predict_synthetic_aus(*, model_ckpt: str | Path, samples_h5: str | Path, out_tsv: str | Path) -> None:
    """Rule predict_synthetic_aus: AU probabilities for every face of a synthetic run's samples.h5."""
    predict_aus(model_ckpt, samples_h5, out_tsv)
