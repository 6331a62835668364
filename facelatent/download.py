"""Verified, resumable, parallel file downloads (FFHQ and any list of url/path/size/md5 entries).

Each file is fetched into `<path>.partial`; an interrupted transfer resumes with an HTTP `Range`
request (a server that ignores the range restarts the file). The size and md5 are checked before
the rename to the final path, so a file with a wrong checksum never sits at its final path.
Transient failures (connection errors, timeouts, short bodies, HTTP 5xx/408/429, checksum
mismatches) are retried with exponential backoff. `file://` and `http(s)://` go through urllib.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from facelatent.datasets.common import relative_inside
from facelatent.datasets.ffhq import KINDS, MANIFEST_NAME, iter_ffhq_manifest
from facelatent.errors import FaceLatentError, InputFileError
from facelatent.store import atomic_path

log = logging.getLogger(__name__)

CHUNK = 1 << 20
RETRY_HTTP = {408, 429}
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class DownloadEntry:
    """One file: where from, where to (relative to the data root), and its expected size and md5."""

    url: str
    path: str
    size: int | None = None
    md5: str | None = None


@dataclass
class DownloadReport:
    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already present and verified
    failed: dict[str, str] = field(default_factory=dict)  # path -> reason
    bytes_fetched: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """One line naming the failed files (at most 5) and why."""
        total = len(self.downloaded) + len(self.skipped) + len(self.failed)
        if not self.failed:
            return f"{len(self.downloaded)} downloaded, {len(self.skipped)} already present, of {total} files"
        names = [f"{p} ({why})" for p, why in sorted(self.failed.items())]
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        return f"download failed for {len(self.failed)} of {total} files: {'; '.join(names[:5])}{more}"


class DownloadError(FaceLatentError):
    """Some files could not be fetched and verified; `.report` has the details."""

    def __init__(self, report: DownloadReport):
        self.report = report
        super().__init__(report.summary())


class _Retry(Exception):
    """A transient failure: try again (after backoff)."""


class _GiveUp(Exception):
    """A permanent failure for this file (e.g. HTTP 404)."""


@dataclass(frozen=True)
class _Options:
    retries: int
    timeout: float
    backoff: float
    chunk_size: int


def as_entry(item: DownloadEntry | dict) -> DownloadEntry:
    """Accept entries as DownloadEntry or as dicts with url, path, size, md5."""
    if isinstance(item, DownloadEntry):
        return item
    return DownloadEntry(url=item["url"], path=item["path"], size=item.get("size"), md5=item.get("md5"))


def target_path(root: Path, rel: str) -> Path:
    """Final path of an entry; paths escaping the root (absolute, `..`, symlinked out) are refused, and so
    are entries whose `.partial` sibling is symlinked out."""
    try:
        rel = relative_inside(rel)
    except ValueError as exc:
        raise InputFileError(rel, f"refused: {exc}") from None
    target = root / rel
    if not target.resolve().is_relative_to(root.resolve()):
        raise InputFileError(rel, f"refused: resolves outside the data root {root}")
    partial = target.with_name(target.name + ".partial")  # written and resumed in place: the same check
    if not partial.resolve().is_relative_to(root.resolve()):
        raise InputFileError(rel, f"refused: its download file {partial.name} resolves outside the data root {root}")
    return target


def file_md5(path: Path, chunk_size: int = CHUNK) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            h.update(block)
    return h.hexdigest()


def check_file(path: Path, entry: DownloadEntry) -> str | None:
    """None when the file matches the entry's size and md5, else the reason."""
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        return f"size {size} != expected {entry.size}"
    if entry.md5 is not None:
        got = file_md5(path)
        if got != entry.md5.lower():
            return f"md5 mismatch (got {got}, expected {entry.md5.lower()})"
    return None


def _range_start(resp) -> int | None:
    """Start offset of a 206 response's Content-Range, or None when absent/unparseable."""
    m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", "") or "")
    return int(m[1]) if m else None


def _open(url: str, offset: int, timeout: float):
    """urlopen with a Range header when resuming; classify errors as retryable or not."""
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416:
            raise _Retry("HTTP 416 (range not satisfiable)") from exc
        if exc.code >= 500 or exc.code in RETRY_HTTP:
            raise _Retry(f"HTTP {exc.code}") from exc
        raise _GiveUp(f"HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _Retry(f"{type(exc).__name__}: {exc}") from exc


class _Counter:
    def __init__(self):
        self.value, self._lock = 0, threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.value += n


def _transfer(entry: DownloadEntry, partial: Path, opts: _Options, bar: tqdm, counter: _Counter) -> None:
    """Append the missing bytes to `partial`, resuming when it exists; raise _Retry on a short body."""
    offset = partial.stat().st_size if partial.exists() else 0
    if entry.size is not None and offset > entry.size:
        bar.update(-offset)
        partial.unlink()
        offset = 0
    if entry.size is not None and offset == entry.size and offset > 0:
        return
    received = 0
    with _open(entry.url, offset, opts.timeout) as resp:
        status = getattr(resp, "status", None)
        if offset and (status != 206 or _range_start(resp) != offset):
            bar.update(-offset)  # the server sent the whole file (or another range): start over
            offset = 0
        try:
            with open(partial, "ab" if offset else "wb") as fh:
                while chunk := resp.read(opts.chunk_size):
                    fh.write(chunk)
                    received += len(chunk)
                    counter.add(len(chunk))
                    bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as exc:
            raise _Retry(f"transfer interrupted after {offset + received} bytes: {type(exc).__name__}") from exc
    got = offset + received
    if entry.size is not None and got < entry.size:
        raise _Retry(f"short body: {got} of {entry.size} bytes")


def _fetch(entry: DownloadEntry, target: Path, opts: _Options, bar: tqdm, counter: _Counter) -> str | None:
    """Download one file with retries; None on success, else the reason it failed."""
    partial = target.with_name(target.name + ".partial")
    target.parent.mkdir(parents=True, exist_ok=True)
    reason = "not attempted"
    for attempt in range(opts.retries + 1):
        if attempt:
            time.sleep(opts.backoff * 2 ** (attempt - 1))
        try:
            _transfer(entry, partial, opts, bar, counter)
        except _GiveUp as exc:
            partial.unlink(missing_ok=True)
            return str(exc)
        except _Retry as exc:
            reason = str(exc)
            log.info("%s: attempt %d failed: %s", entry.path, attempt + 1, reason)
            continue
        problem = check_file(partial, entry)
        if problem is None:
            os.replace(partial, target)
            return None
        reason = problem
        bar.update(-partial.stat().st_size)
        partial.unlink()  # a corrupt body is never resumed
        log.info("%s: attempt %d failed: %s", entry.path, attempt + 1, reason)
    return f"{reason}; {opts.retries + 1} attempts"


def _plan(entries: list[DownloadEntry], root: Path, verify_existing: bool) -> tuple[list, list[str]]:
    """(entry, target) pairs still to fetch, and the paths already present and valid."""
    todo, skipped, seen = [], [], {}
    for entry in entries:
        target = target_path(root, entry.path)
        if entry.path in seen:
            if seen[entry.path] != entry:
                raise InputFileError(entry.path, "listed twice with different url/size/md5")
            continue
        seen[entry.path] = entry
        if target.is_file():
            problem = check_file(target, entry) if verify_existing else None
            if problem is None:
                skipped.append(entry.path)
                continue
            log.warning("%s: existing file is wrong (%s); fetching again", target, problem)
            target.unlink()
        todo.append((entry, target))
    return todo, skipped


def download_files(
    entries: Iterable[DownloadEntry | dict],
    root: str | Path,
    workers: int = 4,
    retries: int = 3,
    timeout: float = 30,
    backoff: float = 1.0,
    progress: bool = True,
    verify_existing: bool = True,
    chunk_size: int = CHUNK,
) -> DownloadReport:
    """Fetch every entry to `root/<path>` in parallel; raise DownloadError (one line) if any failed.

    `retries` counts the attempts after the first; the wait before attempt k is backoff * 2**(k-1) s.
    Every path is checked before anything is fetched: one escaping the root refuses the whole list.
    """
    t0 = time.perf_counter()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    todo, skipped = _plan([as_entry(e) for e in entries], root, verify_existing)
    report = DownloadReport(skipped=skipped)
    opts = _Options(retries, timeout, backoff, chunk_size)
    total = sum(e.size or 0 for e, _ in todo)
    resumed = sum(
        t.with_name(t.name + ".partial").stat().st_size for _, t in todo if t.with_name(t.name + ".partial").is_file()
    )
    counter = _Counter()
    with (
        tqdm(
            total=total,
            initial=resumed,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=not progress,
            desc="download",
        ) as bar,
        ThreadPoolExecutor(max(1, workers)) as pool,
    ):
        results = list(pool.map(lambda et: _fetch(et[0], et[1], opts, bar, counter), todo))
    for (entry, _), problem in zip(todo, results, strict=True):
        if problem is None:
            report.downloaded.append(entry.path)
        else:
            report.failed[entry.path] = problem
            log.warning("%s: %s", entry.path, problem)
    report.bytes_fetched, report.seconds = counter.value, round(time.perf_counter() - t0, 3)
    if report.failed:
        raise DownloadError(report)
    return report


def ffhq_entries(
    manifest: Mapping[int, dict] | Iterable[tuple[int, dict]],
    kinds: Iterable[str] = ("image",),
    indices: Iterable[int] | None = None,
) -> list[DownloadEntry]:
    """Download entries of the chosen kinds (`image`, `thumbnail`, `wild`) from a parsed manifest, or from its
    (index, entry) pairs as `iter_ffhq_manifest` streams them."""
    keys = []
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown FFHQ kind {kind!r}; known: {sorted(KINDS)}")
        keys.append(KINDS[kind])
    wanted = None if indices is None else {int(i) for i in indices}
    out = []
    for index, entry in manifest.items() if isinstance(manifest, Mapping) else manifest:
        if wanted is not None and index not in wanted:
            continue
        for key in keys:
            spec = entry[key]
            out.append(
                DownloadEntry(
                    url=spec["file_url"], path=spec["file_path"], size=spec.get("file_size"), md5=spec.get("file_md5")
                )
            )
    return out


def download_ffhq(
    manifest_json: str | Path,
    root: str | Path,
    kinds: Iterable[str] = ("image",),
    indices: Iterable[int] | None = None,
    workers: int = 4,
    retries: int = 3,
    timeout: float = 30,
    copy_manifest: bool = True,
    **kwargs,
) -> DownloadReport:
    """Fetch FFHQ files listed by `ffhq-dataset-v2.json` into `root` (and copy the manifest there).

    For one-off use: it streams the whole manifest and rewrites `root/ffhq-dataset-v2.json`, so calls sharing a
    root must not run at once. The workflow's download_shard jobs fetch from per-shard download lists instead.
    """
    manifest_json, root = Path(manifest_json), Path(root)
    entries = ffhq_entries(iter_ffhq_manifest(manifest_json), kinds, indices)
    for entry in entries:  # refuse the whole manifest before fetching anything; the error names it
        try:
            relative_inside(entry.path)
        except ValueError as exc:
            raise InputFileError(manifest_json, f"refused: {exc}") from None
    report = download_files(entries, root, workers=workers, retries=retries, timeout=timeout, **kwargs)
    local = root / MANIFEST_NAME
    if copy_manifest and not (local.exists() and local.samefile(manifest_json)):
        with atomic_path(local) as tmp:
            shutil.copyfile(manifest_json, tmp)
    return report
