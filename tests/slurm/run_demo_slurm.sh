#!/usr/bin/env bash
# Run the embedded demo through `snakemake --profile slurm` on a throwaway single-node cluster,
# check that every non-local job went through sbatch, and compare the deterministic outputs
# (check_run.py's COMPARED: index, aligned and projected shards, latents, directions, AU metrics)
# with a local `--cores 2` run. Root only (it installs and starts SLURM).
#
#   tests/slurm/run_demo_slurm.sh [--reference DIR] [--limit SECONDS] [--workdir DIR] [--target RULE] [--seed PATH,..]
#
# --reference DIR  a finished local demo run (DIR/results/...) to compare with. Without it (CI), the SLURM run
#                  goes first and a local run in <workdir>/local then builds just the outputs the comparison
#                  reads (the files of COMPARED that the SLURM run wrote), as their own targets.
# --limit SECONDS  time limit of each Snakemake run (default 2400).
# --workdir DIR    where the copies of the checkout go (default: a new /tmp/facelatent-demo.*).
# --target RULE    what the SLURM run builds (default all; all_but_fr leaves out the FR loop's trainings).
# --seed PATH,..   outputs the second run takes from the first instead of building them (check_run.py seed).
#                  CI: the demo fixtures (make_demo_data, a local rule either way) and the trained encoder
#                  (a 5-minute job, which the SLURM run itself still builds through sbatch).
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

run=$work/slurm
log "SLURM run in $run"
copy_checkout "$run"
cd "$run"
ln -s profiles/slurm slurm  # the setup line of profiles/slurm/README.md
if [[ -n $reference ]] && ((${#seed[@]})); then
    python "$SLURM_TESTS/check_run.py" seed "$reference" "$run" "${seed[@]}" || die "seeding"
fi
slurm_wall=$(PYTHONPATH=$run timed_run "$limit" snakemake.log \
    snakemake --cores 2 --profile slurm --profile tests/slurm/profile "$target") \
    || { tail -30 snakemake.log; die "SLURM run (log: $run/snakemake.log)"; }
log "SLURM run: ${slurm_wall}s"

squeue --states=all -h -O JobID:20,tres-per-job:40,Comment:200 >squeue.txt
python "$SLURM_TESTS/check_run.py" jobs "$run" snakemake.log squeue.txt || die "job check"

if [[ -z $reference ]]; then
    reference=$work/local
    log "local reference run in $reference: the outputs the comparison reads"
    copy_checkout "$reference"
    if ((${#seed[@]})); then python "$SLURM_TESTS/check_run.py" seed "$run" "$reference" "${seed[@]}" || die "seeding"; fi
    mapfile -t compared < <(python "$SLURM_TESTS/check_run.py" compared "$run")
    ((${#compared[@]})) || die "the SLURM run wrote none of the compared outputs"
    local_wall=$(cd "$reference" && PYTHONPATH=$reference timed_run "$limit" snakemake.log \
        snakemake --cores 2 "${compared[@]}") \
        || { tail -30 "$reference/snakemake.log"; die "local run (log: $reference/snakemake.log)"; }
    log "local run (${#compared[@]} targets): ${local_wall}s"
fi
python "$SLURM_TESTS/check_run.py" compare "$reference" "$run" || die "outputs differ from $reference"
log "OK: local run ${local_wall:-given (--reference)}${local_wall:+ s}, SLURM run ${slurm_wall} s; workdir $work"
