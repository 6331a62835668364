"""embed_shard + embed_dataset: per-shard embeddings merged give what embedding the whole dataset at once gave
(the embeddings file, the metrics JSON), a shard is read batch by batch, and a killed shard job resumes.

The FR network here is a tiny fixed one (the subject is the sharding, streaming and merging around it); the
real embedders have their own tests (test_embedders.py, test_facenet.py).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from facelatent.checkpoints import file_sha256
from facelatent.datasets import read_index, write_index
from facelatent.embeddings import job
from facelatent.embeddings.job import embed_dataset, embed_images, embed_shard
from facelatent.embeddings.verification import MetricsConfig, histogram_summary, pair_histograms
from facelatent.errors import InputFileError
from facelatent.store import (
    column_digest,
    content_digest,
    open_checked,
    partial_path,
    read_attrs,
    read_table,
    write_table,
)

RESOLUTION = 64
SHARD_SIZES = (8, 8, 5)  # with BATCH = 4, the shards' batches are the whole set's batches
BATCH = 4
METRICS = {"bins": 4096, "block_size": 5}  # tiles smaller than the set: the blockwise path runs


class TinyEmbedder(torch.nn.Module):
    """A fixed random conv net with the embedder interface (input_size, embedding_dim, embed)."""

    input_size = (32, 32)
    embedding_dim = 16

    def __init__(self):
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 5, stride=2)
        self.fc = torch.nn.Linear(8 * 14 * 14, self.embedding_dim)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.1)
        self.calls = 0

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        x = torch.tanh(self.conv(images / 127.5 - 1))
        return F.normalize(self.fc(x.flatten(1)), dim=1)


@pytest.fixture
def embedder(monkeypatch):
    """job.load_embedder returns the tiny network; the weights file is still hashed for the resume key."""
    model = TinyEmbedder()
    monkeypatch.setattr(job, "load_embedder", lambda spec, device="cpu", weights=None: model.to(device))
    return model


@pytest.fixture
def dataset(tmp_path):
    """Three aligned shards of faces of four subjects (a per-subject face plus noise), their index, a weights file."""
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (4, RESOLUTION, RESOLUTION, 3))
    rows, shards, first = [], [], 0
    for s, size in enumerate(SHARD_SIZES):
        ids = [f"img{first + i:03d}" for i in range(size)]
        subjects = [f"s{(first + i) % 4}" for i in range(size)]
        images = np.stack([faces[int(sub[1:])] + rng.normal(0, 40, faces.shape[1:]) for sub in subjects])
        path = tmp_path / "aligned" / f"{s:03d}.h5"
        path.parent.mkdir(exist_ok=True)
        write_table(
            path,
            "facelatent.aligned",
            {"ids": np.array(ids, dtype=object), "images": images.clip(0, 255).astype(np.uint8)},
        )
        shards.append(path)
        rows += [
            {"id": i, "path": f"{i}.png", "subject": sub, "shard": f"{s:03d}"}
            for i, sub in zip(ids, subjects, strict=True)
        ]
        first += size
    index = tmp_path / "index.tsv"
    write_index(pd.DataFrame(rows), index)
    weights = tmp_path / "weights.safetensors"
    weights.write_bytes(b"tiny embedder weights")
    return {"shards": shards, "index": index, "weights": weights, "dir": tmp_path}


def embed_everything_at_once(dataset, embedder, spec, crop):
    """The former embed_dataset: every aligned image of the dataset in one array, embedded, then scored."""
    ids, images = [], []
    for path in dataset["shards"]:
        table = read_table(path, "facelatent.aligned", ["ids", "images"])
        ids += [str(i) for i in table["ids"]]
        images.append(table["images"])
    emb = embed_images(embedder, np.concatenate(images), crop, batch_size=BATCH, progress=False)
    subjects = read_index(dataset["index"]).set_index("id").loc[ids, "subject"].astype(str).to_numpy()
    hists = pair_histograms(emb, subjects, MetricsConfig.from_dict(METRICS))
    report = {"n": len(ids), "n_subjects": int(len(set(subjects))), "embedder": str(spec)}
    report.update(histogram_summary(hists))
    return ids, subjects, emb, json.loads(json.dumps(report, indent=2, default=float))


def embed_per_shard(dataset, spec, crop, name="emb"):
    out_dir = dataset["dir"] / name
    shards = []
    for path in dataset["shards"]:
        out = out_dir / path.name
        embed_shard(
            aligned=path,
            spec=spec,
            crop=crop,
            weights=dataset["weights"],
            output=out,
            batch_size=BATCH,
            device="cpu",
            progress=False,
        )
        shards.append(out)
    outputs = {key: out_dir / f"set{suffix}" for key, suffix in (("h5", ".h5"), ("json", ".json"), ("png", ".png"))}
    embed_dataset(
        shards=shards,
        index_tsv=dataset["index"],
        spec=spec,
        crop=crop,
        out_h5=outputs["h5"],
        out_json=outputs["json"],
        out_png=outputs["png"],
        device="cpu",
        metrics_config=METRICS,
    )
    return shards, outputs


@pytest.mark.parametrize("crop", ["resize", "ffhq_to_arcface"])
def test_per_shard_then_merge_equals_embedding_everything_at_once(dataset, embedder, crop):
    spec = "facenet_casia"
    ids, subjects, emb, report = embed_everything_at_once(dataset, embedder, spec, crop)
    _, outputs = embed_per_shard(dataset, spec, crop)

    table = read_table(outputs["h5"], "facelatent.embeddings")
    assert sorted(table) == ["embeddings", "ids", "subjects"]
    assert list(table["ids"]) == ids and list(table["subjects"]) == list(subjects)
    assert table["embeddings"].dtype == np.float32 and table["embeddings"].shape == (sum(SHARD_SIZES), 16)
    np.testing.assert_array_equal(table["embeddings"], emb)
    attrs = read_attrs(outputs["h5"], "facelatent.embeddings")
    # the weights' sha256 lets check_leakage confirm it compares embeddings of one FR model
    weights_sha256 = file_sha256(dataset["weights"])
    assert attrs["generator"] == {} and attrs["config"] == {
        "embedder": spec,
        "crop": crop,
        "embedder_sha256": weights_sha256,
    }

    metrics = json.loads(outputs["json"].read_text())
    assert metrics == report
    assert metrics["n"] == 21 and metrics["n_subjects"] == 4 and "eer" in metrics
    assert outputs["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class CountingColumn:
    """An HDF5 dataset whose reads are recorded (rows per read)."""

    def __init__(self, dataset):
        self.dataset, self.reads = dataset, []
        self.shape, self.dtype, self.ndim = dataset.shape, dataset.dtype, dataset.ndim

    def __getitem__(self, key):
        block = self.dataset[key]
        self.reads.append(block.shape[0] if block.ndim == 4 else block.shape)
        return block


class CountingFile:
    def __init__(self, fh, column):
        self.fh, self.column = fh, column

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()

    def __getitem__(self, name):
        return self.column if name == "images" else self.fh[name]


def test_embed_shard_reads_its_aligned_shard_in_batches(dataset, embedder, monkeypatch):
    columns = []

    def counting_open(path, fmt, mode="r"):
        fh = open_checked(path, fmt, mode)
        columns.append(CountingColumn(fh["images"]))
        return CountingFile(fh, columns[-1])

    monkeypatch.setattr(job, "open_checked", counting_open)
    out = dataset["dir"] / "one.h5"
    embed_shard(
        aligned=dataset["shards"][2],
        spec="facenet_casia",
        crop="resize",
        weights=dataset["weights"],
        output=out,
        batch_size=BATCH,
        device="cpu",
        progress=False,
    )
    (column,) = columns
    # the content digest and the embedding each read the 5 images as 4 + 1: never more than one batch
    assert column.reads == [4, 1, 4, 1]
    assert embedder.calls == 2
    assert len(read_table(out, "facelatent.embeddings")["ids"]) == 5


def test_column_digest_equals_content_digest_of_the_whole_columns(dataset):
    table = read_table(dataset["shards"][0], "facelatent.aligned", ["ids", "images"])
    with open_checked(dataset["shards"][0], "facelatent.aligned") as fh:
        for block_rows in (1, 3, 8, 100):
            assert column_digest(fh, ["ids", "images"], block_rows) == content_digest(table["ids"], table["images"])
        assert column_digest(fh, ["images"]) != column_digest(fh, ["ids", "images"])


class Killed(Exception):
    pass


def killed_in_the_second_batch(embedder, monkeypatch, kwargs: dict) -> None:
    """Run embed_shard until its FR model dies in the second batch, then give the model back."""
    embed = embedder.embed

    def dies_in_the_second_batch(images):
        if embedder.calls == 1:
            raise Killed
        return embed(images)

    embedder.calls = 0
    monkeypatch.setattr(embedder, "embed", dies_in_the_second_batch)
    with pytest.raises(Killed):
        embed_shard(**kwargs)
    monkeypatch.setattr(embedder, "embed", embed)


def test_killed_shard_job_leaves_no_output_and_resumes(dataset, embedder, monkeypatch, caplog):
    aligned, out = dataset["shards"][0], dataset["dir"] / "resumed.h5"
    kwargs = dict(
        aligned=aligned,
        spec="facenet_casia",
        crop="resize",
        weights=dataset["weights"],
        output=out,
        batch_size=BATCH,
        device="cpu",
        progress=False,
    )
    reference = embed_images(
        embedder, read_table(aligned, "facelatent.aligned", ["images"])["images"], "resize", BATCH, progress=False
    )
    killed_in_the_second_batch(embedder, monkeypatch, kwargs)
    assert not out.exists() and partial_path(out).exists()

    # the rerun keeps the first batch and embeds only the second one
    embedder.calls = 0
    with caplog.at_level("INFO", logger="facelatent.embeddings.job"):
        embed_shard(**kwargs)
    assert embedder.calls == 1 and "1 of 2 batches done" in caplog.text
    assert out.exists() and not partial_path(out).exists()
    np.testing.assert_array_equal(read_table(out, "facelatent.embeddings")["embeddings"], reference)
    config = read_attrs(out, "facelatent.embeddings")["config"]
    assert config["embedder_sha256"] and config["aligned_digest"] and config["crop"] == "resize"


def test_partial_file_of_other_weights_is_not_resumed(dataset, embedder, monkeypatch, caplog):
    out = dataset["dir"] / "stale.h5"
    kwargs = dict(
        aligned=dataset["shards"][0],
        spec="facenet_casia",
        crop="resize",
        weights=dataset["weights"],
        output=out,
        batch_size=BATCH,
        device="cpu",
        progress=False,
    )
    killed_in_the_second_batch(embedder, monkeypatch, kwargs)
    dataset["weights"].write_bytes(b"other weights")
    embedder.calls = 0
    with caplog.at_level("WARNING", logger="facelatent.embeddings.job"):
        embed_shard(**kwargs)
    assert embedder.calls == 2 and "made with another embedder; starting over" in caplog.text


def test_merge_refuses_shards_of_different_embedders(dataset, embedder):
    shards, _ = embed_per_shard(dataset, "facenet_casia", "resize")
    dataset["weights"].write_bytes(b"other weights")
    embed_shard(
        aligned=dataset["shards"][1],
        spec="facenet_casia",
        crop="resize",
        weights=dataset["weights"],
        output=shards[1],
        batch_size=BATCH,
        device="cpu",
        progress=False,
    )
    with pytest.raises(InputFileError, match="re-embed the stale shards"):
        embed_dataset(
            shards=shards,
            index_tsv=dataset["index"],
            spec="facenet_casia",
            crop="resize",
            out_h5=dataset["dir"] / "x.h5",
            out_json=dataset["dir"] / "x.json",
            out_png=dataset["dir"] / "x.png",
            device="cpu",
        )
