"""bench/gpu.sh: the CPU smoke run of bench/gpu.py prints every row; without CUDA the script skips in one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import REPO

ROWS = [  # (check, size) of every row of the smoke plan, in table order
    ("generator fp16 vs fp32", "16 px, B=2"),
    ("generator fp16 vs fp32", "32 px, B=2"),
    ("projection", "16 px, B=1"),
    ("projection", "16 px, B=2"),
    ("projection", "16 px, B=4"),
    ("projection", "32 px, B=1"),
    ("projection", "32 px, B=2"),
    ("langevin", "N=4, 3/pass"),
    ("langevin", "N=8, 3/pass"),
]


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **extra}


def test_cpu_smoke_prints_every_row(tmp_path):
    out = tmp_path / "table.md"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu.py"), "--cpu-smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.read_text() == proc.stdout  # the table alone on stdout, the same in the file
    rows = [line.split(" | ") for line in proc.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    header, body = rows[0], rows[1:]
    assert [r[0].lstrip("| ") for r in body] == [c for c, _ in ROWS]
    assert [r[1] for r in body] == [s for _, s in ROWS]
    assert all(len(r) == len(header) for r in body)
    assert "skipped" not in proc.stdout and "FAIL" not in proc.stdout
    for r in body:
        if r[0].lstrip("| ") == "langevin":
            assert re.match(r"ok: max dw' \S+ of the step", r[5]), r
        if r[0].lstrip("| ") == "generator fp16 vs fp32":  # on the CPU fp16 blocks run in fp32
            assert "identical" in r[5], r
    assert "micro_batch" in proc.stdout and "B=1 x 4" in proc.stdout


def test_gpu_sh_without_cuda_skips_in_one_line(tmp_path):
    proc = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu.sh")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env(PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="", OUT=str(tmp_path)),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "bench/gpu.sh: no CUDA device (torch.cuda.is_available() is False); skipping\n"
    assert not (tmp_path / "gpu_table.md").exists()
