#!/usr/bin/env bash
# Run the embedded demo through `snakemake --profile slurm` on a throwaway single-node cluster,
# check that every non-local job went through sbatch, and compare the deterministic outputs
# with a local `--cores 2` run. Root only (it installs and starts SLURM).
#
#   tests/slurm/run_demo_slurm.sh [--reference DIR] [--limit SECONDS] [--workdir DIR] [--target RULE] [--seed PATH,..]
#
# --reference DIR  a finished local demo run (DIR/results/...) to compare with, e.g. the
#                  checkout after CI's own demo run; without it, a local run is made first.
# --limit SECONDS  time limit of each Snakemake run (default 2400).
# --workdir DIR    where the copies of the checkout go (default: a new /tmp/facelatent-demo.*).
# --target RULE    what the SLURM run builds (default all; CI: all_but_fr, every output but the FR loop's
#                  training and benchmarks, whose SLURM resources tests/test_slurm_profile.py checks by dry run).
#                  The comparison covers the outputs of check_run.py's COMPARED, none of them the FR loop's.
# --seed PATH,..   outputs the SLURM run takes from the reference instead of building them (check_run.py seed).
#                  CI: the demo fixtures (make_demo_data, a local rule either way) and the trained encoder (one
#                  5-minute GPU job; visible_subspace and create_references still take the same SLURM path).
# Leaves the workdir in place and prints its path; starts and stops the cluster unless one is up.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

reference="" limit=2400 work="" target=all seed=()
while (($#)); do
    case $1 in
        --reference) reference=$(cd "$2" && pwd); shift 2 ;;
        --limit) limit=$2; shift 2 ;;
        --workdir) work=$2; shift 2 ;;
        --target) target=$2; shift 2 ;;
        --seed) IFS=, read -ra seed <<<"$2"; shift 2 ;;
        *) die "unknown argument $1 (see the header of $0)" ;;
    esac
done
work=${work:-$(mktemp -d /tmp/facelatent-demo.XXXXXX)}
mkdir -p "$work"

if ensure_cluster; then trap '"$SLURM_TESTS/stop_cluster.sh" >&2' EXIT; fi

if [[ -z $reference ]]; then
    reference=$work/local
    log "local reference run in $reference"
    copy_checkout "$reference"
    local_wall=$(cd "$reference" && PYTHONPATH=$reference timed_run "$limit" snakemake.log snakemake --cores 2) \
        || { tail -30 "$reference/snakemake.log"; die "local run (log: $reference/snakemake.log)"; }
    log "local run: ${local_wall}s"
fi

run=$work/slurm
log "SLURM run in $run"
copy_checkout "$run"
cd "$run"
ln -s profiles/slurm slurm  # the setup line of profiles/slurm/README.md
if ((${#seed[@]})); then python "$SLURM_TESTS/check_run.py" seed "$reference" "$run" "${seed[@]}" || die "seeding"; fi
slurm_wall=$(PYTHONPATH=$run timed_run "$limit" snakemake.log \
    snakemake --cores 2 --profile slurm --profile tests/slurm/profile "$target") \
    || { tail -30 snakemake.log; die "SLURM run (log: $run/snakemake.log)"; }
log "SLURM run: ${slurm_wall}s"

squeue --states=all -h -O JobID:20,tres-per-job:40,Comment:200 >squeue.txt
python "$SLURM_TESTS/check_run.py" jobs "$run" snakemake.log squeue.txt || die "job check"
python "$SLURM_TESTS/check_run.py" compare "$reference" "$run" || die "outputs differ from $reference"
log "OK: local run ${local_wall:-given (--reference)}${local_wall:+ s}, SLURM run ${slurm_wall} s; workdir $work"
