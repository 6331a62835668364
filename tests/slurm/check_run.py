"""Checks for a workflow run on the test cluster (used by the tests/slurm/*.sh harness scripts).

python tests/slurm/check_run.py jobs WORKDIR SNAKEMAKE_LOG SQUEUE_TABLE
    every non-local job went through sbatch: the main log names its SLURM job, and the
    job's own rule log says "SLURM job <id>" with one of those ids; local jobs have none.
    SQUEUE_TABLE (`squeue --states=all -h -O JobID:20,tres-per-job:40,Comment:200`) shows that
    the GPU rules' jobs, and only they, asked SLURM for a GPU.
python tests/slurm/check_run.py compare REFERENCE_DIR RUN_DIR
    deterministic outputs agree array by array (HDF5 datasets and attributes, .npy; NaN = NaN)
    or byte for byte (.tsv, .json).
python tests/slurm/check_run.py compared RUN_DIR
    prints the deterministic outputs (COMPARED) a run wrote, one path per line relative to RUN_DIR.
python tests/slurm/check_run.py seed REFERENCE_DIR RUN_DIR PATH...
    copies PATHs (files or folders, relative to the checkout) and Snakemake's metadata records of the files under
    them from a finished run into a fresh checkout, with new modification times, so that Snakemake takes them as
    built there (no rerun: same code, params and inputs; newer than the checkout's inputs).
python tests/slurm/check_run.py resumed LOGFILE
    prints the step a resumed projection continued from (exit 1 when it started over).
"""

from __future__ import annotations

import base64
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

# "rule X:" / "localrule X:" opens a job block in Snakemake's log; "jobid: N" follows.
JOB_BLOCK = re.compile(r"^( +)?(local)?(?:rule|checkpoint) (\w+):\n(?:\s+\w+: .*\n)*?\s+jobid: (\d+)$", re.M)
SUBMITTED = re.compile(r"^Job (\S+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)\.", re.M)
RULE_BLOCK = re.compile(r"^(?:rule|checkpoint) (\w+):\n(.*?)(?=^\S|\Z)", re.M | re.S)
RULES_DIR = Path(__file__).resolve().parents[2] / "rules"


def gpu_rules(rules_dir: Path = RULES_DIR) -> frozenset[str]:
    """The rules whose resources declare a GPU (`gpu=1`, or train_fr's configured device count), read from the .smk
    files (no hand-kept list to go stale)."""
    return frozenset(
        name
        for smk in sorted(rules_dir.glob("*.smk"))
        for name, body in RULE_BLOCK.findall(smk.read_text())
        if re.search(r"^\s+gpu=(?!0,?$)\S+?,?$", body, re.M)
    )


# their SLURM jobs must ask for a GPU, all others must not
GPU_RULES = gpu_rules()
# facelatent.rulekit.setup_rule_logging writes this line when the job runs under SLURM.
RULE_LOG_JOB = re.compile(r"SLURM job (\d+) on ")
RESUMED = re.compile(r"resuming at step (\d+)")
# Outputs that depend only on inputs and seeds (model.ckpt is left out: it differs in bytes).
COMPARED = (
    "results/index/*.tsv",
    "results/aligned/*/*.h5",
    "results/latents/*/*.h5",
    "results/latents/*.h5",
    "results/directions/*.npy",
    "results/au/*/metrics.json",
    "results/au/*/per_au.tsv",
)


@dataclass(frozen=True)
class Job:
    jobid: str
    rule: str
    local: bool
    grouped: bool


def parse_jobs(log_text: str) -> dict[str, Job]:
    """Jobs announced in a Snakemake log, by Snakemake job id (last announcement wins).

    Members of a group job are announced indented, after a "Group job ..." line."""
    return {m[4]: Job(m[4], m[3], bool(m[2]), bool(m[1])) for m in JOB_BLOCK.finditer(log_text)}


def parse_submissions(log_text: str) -> dict[str, str]:
    """Snakemake job (or group) id -> SLURM job id, from the executor's submission lines."""
    return {m[1]: m[2] for m in SUBMITTED.finditer(log_text)}


def rule_log_job_ids(workdir: Path, rule: str) -> dict[Path, set[str]]:
    """SLURM job ids that each log file of a rule reports."""
    return {
        p: set(RULE_LOG_JOB.findall(p.read_text(errors="replace")))
        for p in sorted((workdir / "logs" / rule).rglob("*.log"))
    }


def check_jobs(workdir: Path, log_text: str) -> list[str]:
    """Problems with the claim that every non-local job ran as its own SLURM job."""
    jobs = parse_jobs(log_text)
    submitted = parse_submissions(log_text)
    slurm_ids = set(submitted.values())
    problems = []
    if not submitted:
        problems.append("no job was submitted through sbatch")
    remote_rules = {j.rule for j in jobs.values() if not j.local and j.rule != "all"}
    local_rules = {j.rule for j in jobs.values() if j.local} - remote_rules
    for rule in sorted(remote_rules):
        logs = rule_log_job_ids(workdir, rule)
        if not logs:
            problems.append(f"rule {rule}: no log files under logs/{rule}/")
        for path, ids in logs.items():
            if not ids & slurm_ids:
                problems.append(f"{path}: no 'SLURM job <id>' line with a submitted id (found {sorted(ids)})")
    for rule in sorted(local_rules):
        for path, ids in rule_log_job_ids(workdir, rule).items():
            if ids:
                problems.append(f"{path}: local rule ran as SLURM job {sorted(ids)}")
    for job in jobs.values():
        # a grouped job is submitted under its group's id, which the log does not tie to the job
        if not job.local and job.rule != "all" and job.jobid not in submitted and not job.grouped:
            problems.append(f"job {job.jobid} ({job.rule}): no submission line")
    seen = set().union(*(ids for rule in remote_rules for ids in rule_log_job_ids(workdir, rule).values()))
    if slurm_ids - seen:
        problems.append(f"SLURM jobs {sorted(slurm_ids - seen, key=int)} left no rule log")
    return problems


def check_gpu_requests(slurm_ids: set[str], squeue_table: str) -> list[str]:
    """Problems with GPU requests: a GPU rule's job without `gpu` in its TRES, or another job with it."""
    rows = {
        jobid: (tres, comment)
        for jobid, tres, comment in (line.split() for line in squeue_table.splitlines() if line.strip())
    }
    problems = [f"SLURM job {i}: not in the squeue table" for i in sorted(slurm_ids - rows.keys(), key=int)]
    for jobid in sorted(slurm_ids & rows.keys(), key=int):
        tres, comment = rows[jobid]
        wants_gpu = any(comment.startswith(f"rule_{rule}") or comment.endswith(f"_{rule}") for rule in GPU_RULES)
        if wants_gpu != ("gpu" in tres):
            problems.append(f"SLURM job {jobid} ({comment}): TRES per job {tres}")
    return problems


def h5_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file by its path, plus root attributes as `@name`."""
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as fh:
        fh.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        out.update({f"@{k}": np.asarray(v) for k, v in fh.attrs.items()})
    return out


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".npy":
        return {"": np.load(path)}
    if path.suffix == ".h5":
        return h5_arrays(path)
    return {"": np.frombuffer(path.read_bytes(), dtype=np.uint8)}


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shape and values; NaN equals NaN (e.g. the 5-point landmarks of images aligned without them)."""
    if a.shape != b.shape:
        return False
    floats = a.dtype.kind in "fc" and b.dtype.kind in "fc"
    return bool(np.array_equal(a, b, equal_nan=floats))


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.dtype.kind in "fiub" and b.dtype.kind in "fiub" and a.shape == b.shape and a.size:
        return float(np.nanmax(np.abs(a.astype(np.float64) - b.astype(np.float64))))
    return 0.0 if np.array_equal(a, b) else float("inf")


def compare_file(ref: Path, run: Path) -> list[str]:
    """Differences between two files' arrays (empty when identical)."""
    a, b = load_arrays(ref), load_arrays(run)
    if a.keys() != b.keys():
        return [f"{run}: datasets differ: {sorted(a.keys() ^ b.keys())}"]
    problems = []
    for key in sorted(a):
        if not same_array(a[key], b[key]):
            problems.append(
                f"{run}{'::' + key if key else ''}: differs, max abs diff {max_abs_diff(a[key], b[key]):.3g}"
            )
    return problems


def compared_outputs(run_dir: Path) -> list[str]:
    """The files matching COMPARED under `run_dir`, relative to it."""
    return sorted(str(p.relative_to(run_dir)) for pattern in COMPARED for p in run_dir.glob(pattern))


def compare_dirs(ref_dir: Path, run_dir: Path) -> tuple[int, list[str]]:
    """Compare every deterministic output present in the reference; returns (files compared, problems)."""
    refs = sorted(p for pattern in COMPARED for p in ref_dir.glob(pattern))
    problems = []
    for ref in refs:
        run = run_dir / ref.relative_to(ref_dir)
        problems += compare_file(ref, run) if run.exists() else [f"{run}: missing"]
    if not refs:
        problems.append(f"{ref_dir}: no outputs to compare")
    return len(refs), problems


def metadata_record(path: str) -> str:
    """The file name Snakemake gives the metadata record of an output path (.snakemake/metadata/)."""
    return base64.urlsafe_b64encode(path.encode()).decode()


def seed_outputs(ref_dir: Path, run_dir: Path, paths: list[str]) -> list[str]:
    """Copy `paths` and their metadata records from `ref_dir` to `run_dir`; returns the outputs seeded."""
    seeded = []
    for rel in paths:
        src, dst = ref_dir / rel, run_dir / rel
        if not src.exists():
            raise SystemExit(f"check_run: {src}: nothing to seed")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, copy_function=shutil.copyfile, dirs_exist_ok=True)
        else:
            shutil.copyfile(src, dst)
        files = [str(p.relative_to(ref_dir)) for p in ([src] if src.is_file() else sorted(src.rglob("*")))]
        for out in files:
            record = ref_dir / ".snakemake" / "metadata" / metadata_record(out)
            if record.is_file():
                (run_dir / ".snakemake" / "metadata").mkdir(parents=True, exist_ok=True)
                shutil.copyfile(record, run_dir / ".snakemake" / "metadata" / record.name)
                seeded.append(out)
    return seeded


def resumed_step(log_text: str) -> int | None:
    found = RESUMED.findall(log_text)
    return int(found[0]) if found else None


def main(argv: list[str]) -> int:
    cmd, *args = argv
    if cmd == "jobs":
        workdir, log = Path(args[0]), Path(args[1]).read_text()
        ids = set(parse_submissions(log).values())
        problems = check_jobs(workdir, log) + check_gpu_requests(ids, Path(args[2]).read_text())
        print(f"check_run: {len(ids)} SLURM jobs: {' '.join(sorted(ids, key=int))}")
    elif cmd == "compare":
        n, problems = compare_dirs(Path(args[0]), Path(args[1]))
        print(f"check_run: compared {n} files")
    elif cmd == "compared":
        outputs = compared_outputs(Path(args[0]))
        print("\n".join(outputs))
        problems = [] if outputs else [f"{args[0]}: no compared outputs"]
    elif cmd == "seed":
        seeded = seed_outputs(Path(args[0]), Path(args[1]), args[2:])
        problems = [] if seeded else [f"no Snakemake output with a metadata record under {args[2:]}"]
        print(f"check_run: seeded {len(seeded)} outputs: {' '.join(seeded)}")
    elif cmd == "resumed":
        step = resumed_step(Path(args[0]).read_text())
        problems = [] if step else [f"{args[0]}: no 'resuming at step N' line"]
        print(f"check_run: resumed at step {step}")
    else:
        raise SystemExit(__doc__)
    for p in problems:
        print(f"check_run: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
