"""index_dataset writes one download list per FFHQ shard; download_shard reads only its list and writes only its own
files, so shard jobs finishing together cannot collide, and a job's memory does not grow with the manifest."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import facelatent.datasets.job as job
from facelatent.datasets import iter_ffhq_manifest, read_download_list, read_index, read_shard_manifest
from facelatent.errors import InputFileError

REPO = Path(__file__).resolve().parents[1]


def write_manifest(path: Path, sources: list[Path], n: int, seed: int = 0) -> Path:
    """An `ffhq-dataset-v2.json` of the real structure (DATASETS.md §3.2: metadata, image with 68 landmarks,
    thumbnail, in_the_wild with face_rect, 68 landmarks and face_quad), `n` entries; entry i's files are
    file:// URLs to `sources[i % len(sources)]`. Streamed: 70,000 entries are ~290 MB, as the real file."""
    specs = []
    for src in sources:
        data = src.read_bytes()
        specs.append((src.resolve().as_uri(), len(data), hashlib.md5(data).hexdigest()))
    rng = random.Random(seed)
    aligned = [json.dumps([[round(rng.uniform(100, 900), 6) for _ in "xy"] for _ in range(68)]) for _ in range(64)]
    wild = [json.dumps([[float(rng.randint(0, 2000)) for _ in "xy"] for _ in range(68)]) for _ in range(64)]

    def section(folder: str, i: int, pixels: str) -> str:
        url, size, md5 = specs[i % len(specs)]
        return (
            f'"file_url": "{url}", "file_path": "{folder}/{i // 1000 * 1000:05d}/{i:05d}.png", "file_size": {size}, '
            f'"file_md5": "{md5}", "pixel_size": {pixels}, "pixel_md5": "{md5}"'
        )

    def entry(i: int) -> str:
        return (
            f'"{i}": {{"category": "{"training" if i < 60000 else "validation"}", "metadata": {{'
            f'"photo_url": "https://www.flickr.com/photos/user{i}/{1000000 + i}/", "photo_title": "IMG_{i:04d}.JPG", '
            f'"author": "Author {i}", "country": "", "license": "Attribution-NonCommercial License", '
            f'"license_url": "https://creativecommons.org/licenses/by-nc/2.0/", "date_uploaded": "2010-01-01", '
            f'"date_crawled": "2018-10-10"}}, '
            f'"image": {{{section("images1024x1024", i, "[1024, 1024]")}, "face_landmarks": {aligned[i % 64]}}}, '
            f'"thumbnail": {{{section("thumbnails128x128", i, "[128, 128]")}}}, '
            f'"in_the_wild": {{{section("in-the-wild-images", i, "[2016, 1512]")}, "face_rect": [300, 250, 700, 750], '
            f'"face_landmarks": {wild[i % 64]}, '
            f'"face_quad": [[100.5, 120.25], [100.5, 920.75], [900.5, 920.75], [900.5, 120.25]]}}}}'
        )

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fh.write("{")
        for i in range(n):
            fh.write(("" if i == 0 else ", ") + entry(i))
        fh.write("}")
    return path


def sources(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(count):
        (folder / f"{i}.png").write_bytes(random.Random(i).randbytes(3000 + 100 * i))
        out.append(folder / f"{i}.png")
    return out


def index_kwargs(work: Path, manifest: Path, images_per_shard: int, **options) -> dict:
    return dict(
        kind="ffhq",
        root=work / "data",
        options=options,
        images_per_shard=images_per_shard,
        index=work / "results/index/ffhq.tsv",
        shards=work / "results/index/ffhq.shards.tsv",
        rows=work / "results/index/ffhq/rows",
        downloads=work / "results/index/ffhq/downloads",
        manifest=manifest,
    )


def shard_job(work: Path, shard: str) -> dict:
    return dict(
        download_list=work / f"results/index/ffhq/downloads/{shard}.jsonl",
        shard=shard,
        root=work / "data",
        output=work / f"results/downloads/ffhq/{shard}.json",
    )


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under `folder`: (size, mtime_ns)."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()
    }


def make_indexed(work: Path, n: int) -> Path:
    """An `n`-entry manifest (outside the data root), indexed into shards of 4 images."""
    manifest = write_manifest(work / "meta/ffhq-dataset-v2.json", sources(work / "remote", 3), n)
    job.index_dataset(**index_kwargs(work, manifest, 4))
    return work


@pytest.fixture
def indexed(tmp_path) -> Path:
    """10 entries: shards of 4, 4 and 2 images."""
    return make_indexed(tmp_path, 10)


def test_index_writes_one_download_list_per_shard(indexed):
    downloads = indexed / "results/index/ffhq/downloads"
    shards = read_shard_manifest(indexed / "results/index/ffhq.shards.tsv")
    assert shards == ["000", "001", "002"] and sorted(p.name for p in downloads.iterdir()) == [
        f"{s}.jsonl" for s in shards
    ]
    index = read_index(indexed / "results/index/ffhq.tsv")
    assert "landmarks" not in index.columns and "url" not in index.columns  # the index stays small
    manifest = dict(iter_ffhq_manifest(indexed / "meta/ffhq-dataset-v2.json"))
    for shard in shards:
        entries = read_download_list(downloads / f"{shard}.jsonl")
        assert [e["id"] for e in entries] == index.loc[index["shard"] == shard, "id"].tolist()
        for e in entries:
            image = manifest[e["index"]]["image"]
            assert (e["path"], e["url"], e["size"], e["md5"]) == (
                image["file_path"],
                image["file_url"],
                image["file_size"],
                image["file_md5"],
            )
            assert e["landmarks"] == image["face_landmarks"] and len(e["landmarks"]) == 68


def test_index_options_reach_the_lists(tmp_path):
    """The lists follow the indexed kind and filters; `landmarks: true` keeps them in the index too."""
    manifest = write_manifest(tmp_path / "ffhq-dataset-v2.json", sources(tmp_path / "remote", 2), 6)
    job.index_dataset(**index_kwargs(tmp_path, manifest, 2, kind="wild", indices=[1, 2, 5], landmarks=True))
    index = read_index(tmp_path / "results/index/ffhq.tsv")
    assert index.id.tolist() == ["00001", "00002", "00005"] and "landmarks" in index.columns
    entries = read_download_list(tmp_path / "results/index/ffhq/downloads/001.jsonl")
    assert [e["path"] for e in entries] == ["in-the-wild-images/00000/00005.png"]
    assert json.loads(index.landmarks.iloc[2]) == entries[0]["landmarks"]


def test_non_ffhq_index_writes_an_empty_download_folder(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(b"x")
    kwargs = index_kwargs(tmp_path, None, 4) | dict(kind="folder", root=photos)
    job.index_dataset(**kwargs)
    assert kwargs["downloads"].is_dir() and not list(kwargs["downloads"].iterdir())


def test_two_shards_finishing_together_both_succeed(tmp_path, monkeypatch):
    """The issue: every job rewrote one shared file through one shared `.partial` name, so of two jobs finishing
    together the second failed after its downloads. Both jobs here wait for each other after downloading. (With the
    old jobs, which copied this 12 MB manifest into the data root, one of the two failed in 10 of 10 runs.)"""
    indexed = make_indexed(tmp_path, 3000)
    real = job.download_files
    together = threading.Barrier(2, timeout=20)

    def download_then_wait(*args, **kwargs):
        report = real(*args, **kwargs)
        together.wait()
        return report

    monkeypatch.setattr(job, "download_files", download_then_wait)
    errors: dict[str, BaseException] = {}

    def run(shard: str) -> None:
        try:
            job.download_shard(**shard_job(indexed, shard), workers=2)
        except BaseException as exc:  # reported below
            errors[shard] = exc

    threads = [threading.Thread(target=run, args=(shard,)) for shard in ("000", "001")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    for shard in ("000", "001"):
        receipt = json.loads((indexed / f"results/downloads/ffhq/{shard}.json").read_text())
        assert receipt["shard"] == shard and receipt["files"] == 4
    # the data root holds the 8 images and nothing else: no manifest copy, no leftover .partial
    entries = [e for s in ("000", "001") for e in read_download_list(shard_job(indexed, s)["download_list"])]
    assert sorted(tree(indexed / "data")) == sorted(e["path"] for e in entries)
    for e in entries:
        assert hashlib.md5((indexed / "data" / e["path"]).read_bytes()).hexdigest() == e["md5"]


def test_a_shard_job_reads_only_its_list_and_writes_only_its_files(indexed):
    """Manifest, index, shard TSV and the other shards' lists are gone: the job still succeeds, and what it adds is
    its own images and its own receipt; nothing that existed changes."""
    (indexed / "meta/ffhq-dataset-v2.json").unlink()
    (indexed / "results/index/ffhq.tsv").unlink()
    (indexed / "results/index/ffhq.shards.tsv").unlink()
    for shard in ("000", "002"):
        (indexed / f"results/index/ffhq/downloads/{shard}.jsonl").unlink()
    before = tree(indexed)
    receipt = job.download_shard(**shard_job(indexed, "001"), workers=2)
    after = tree(indexed)
    entries = read_download_list(indexed / "results/index/ffhq/downloads/001.jsonl")
    assert receipt["files"] == 4 and [e["path"] for e in entries][0] == "images1024x1024/00000/00004.png"
    added = sorted(set(after) - set(before))
    assert added == sorted([*(f"data/{e['path']}" for e in entries), "results/downloads/ffhq/001.json"])
    assert {k: after[k] for k in before} == before
    # run again: everything is verified in place, nothing fetched
    again = job.download_shard(**shard_job(indexed, "001"), workers=2)
    assert "downloaded=[]" in again["report"]


def test_a_broken_download_list_is_named(tmp_path):
    bad = tmp_path / "000.jsonl"
    bad.write_text('{"url": "file:///x", "path": "a.png"}\n{"path": "b.png"}\n')
    with pytest.raises(InputFileError, match=r"000\.jsonl.*line 2"):
        read_download_list(bad)


MEASURE = """
import json, sys
import facelatent.datasets.job as job
kwargs = json.loads(sys.argv[1])
getattr(job, sys.argv[2])(**kwargs)
with open("/proc/self/status") as fh:
    peak_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
print(json.dumps({"peak_rss_mb": peak_kb / 1024}))
"""


def peak_rss_mb(function: str, **kwargs) -> float:
    """Run one job in a fresh interpreter; its own peak RSS in MB. That is VmHWM, the high-water mark of the
    process's memory since its exec: Linux hands a spawned child the parent's peak as the start of its
    getrusage().ru_maxrss, so ru_maxrss would report this pytest process (torch and all) instead."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    args = json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in kwargs.items()})
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, args, function], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mb"]


@pytest.fixture(scope="module")
def manifest70k(tmp_path_factory) -> tuple[Path, list[Path]]:
    """The full FFHQ cardinality: 70,000 real-structure entries (~290 MB), and the files they point at."""
    folder = tmp_path_factory.mktemp("ffhq70k")
    files = sources(folder / "remote", 4)
    return write_manifest(folder / "ffhq-dataset-v2.json", files, 70_000), files


def test_download_job_memory_at_70k_entries(manifest70k, tmp_path):
    """One 256-image shard job with the 70,000-entry manifest as the dataset's manifest stays far under its
    mem_mb=1000 (parsing the manifest in every job took 2.2 GB). Its list is the one the index writes for shard 000
    of the full manifest (the same first 256 entries), made here from a 256-entry manifest to keep the test fast."""
    big, files = manifest70k
    manifest = write_manifest(tmp_path / "meta/ffhq-dataset-v2.json", files, 256)
    job.index_dataset(**index_kwargs(tmp_path, manifest, 256))
    manifest.unlink()
    manifest.symlink_to(big)
    rss = peak_rss_mb("download_shard", **shard_job(tmp_path, "000"), workers=4)
    assert len(list((tmp_path / "data").rglob("*.png"))) == 256
    assert rss < 400, f"download_shard peaked at {rss:.0f} MB"


@pytest.mark.slow
def test_index_job_memory_at_70k_entries(manifest70k, tmp_path):
    """The index job streams the manifest once (parsing the whole document took 2.2 GB) into 274 download lists and
    274 rows files."""
    big, _ = manifest70k
    rss = peak_rss_mb("index_dataset", **index_kwargs(tmp_path, big, 256))
    shards = read_shard_manifest(tmp_path / "results/index/ffhq.shards.tsv")
    assert len(shards) == 274 and len(list((tmp_path / "results/index/ffhq/downloads").iterdir())) == 274
    assert sorted(p.name for p in (tmp_path / "results/index/ffhq/rows").iterdir()) == [f"{s}.tsv" for s in shards]
    assert len(read_index(tmp_path / "results/index/ffhq/rows/273.tsv")) == 70_000 - 273 * 256
    last = read_download_list(tmp_path / "results/index/ffhq/downloads/273.jsonl")
    assert len(last) == 70_000 - 273 * 256 and last[-1]["path"] == "images1024x1024/69000/69999.png"
    assert rss < 1000, f"index_dataset peaked at {rss:.0f} MB"
