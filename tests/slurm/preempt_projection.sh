#!/usr/bin/env bash
# Preempt a running project_shard SLURM job and check that a rerun resumes it from its saved step
# and ends with the same latents as an uninterrupted run. Root only (uses the test cluster).
#
#   tests/slurm/preempt_projection.sh [--workdir DIR] [--shard ffhq/000] [--limit SECONDS]
#
# --workdir DIR  a finished SLURM demo run (e.g. <workdir>/slurm of run_demo_slurm.sh) whose
#                shard latents serve as the uninterrupted result; without it, a fresh copy of
#                the checkout first builds the shard once through SLURM.
# Steps: delete the shard's latents, run Snakemake for them in the background, `scancel` the
# projection job right after its first checkpoint; Snakemake must report the job failed and retry
# it (`retries: 1` on project_shard) as a new SLURM job whose log says "resuming at step N" with N at
# or past the saved step; the finished latents must equal the uninterrupted run's, array for array.
# (Stopping Snakemake itself and rerunning resumes through the same .partial file.)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

work="" shard=ffhq/000 limit=1800
while (($#)); do
    case $1 in
        --workdir) work=$(cd "$2" && pwd); shift 2 ;;
        --shard) shard=$2; shift 2 ;;
        --limit) limit=$2; shift 2 ;;
        *) die "unknown argument $1 (see the header of $0)" ;;
    esac
done

if ensure_cluster; then trap '"$SLURM_TESTS/stop_cluster.sh" >&2' EXIT; fi

target=results/latents/$shard.h5
rule_log=logs/project_shard/$shard.log
smk=(snakemake --cores 2 --profile slurm --profile tests/slurm/profile)

if [[ -z $work ]]; then
    work=$(mktemp -d /tmp/facelatent-preempt.XXXXXX)
    copy_checkout "$work"
    (cd "$work" && ln -s profiles/slurm slurm)
    log "building $target once, uninterrupted, in $work"
    (cd "$work" && PYTHONPATH=$work timed_run "$limit" first.log "${smk[@]}" "$target" >/dev/null) \
        || { tail -30 "$work/first.log"; die "first build of $target"; }
fi
cd "$work"
export PYTHONPATH=$work
# the uninterrupted result, kept from an earlier call of this script in the same workdir
if [[ ! -f expected/$target ]]; then
    [[ -f $target ]] || die "$work has no $target to compare with"
    mkdir -p "expected/$(dirname "$target")"
    cp "$target" "expected/$target"
fi
rm -f "$target" "$target.partial" "$rule_log"

log "projecting $target; it will be cancelled after its first checkpoint"
start=$SECONDS
timeout -k 30 "$limit" "${smk[@]}" "$target" >preempted.log 2>&1 &
snakemake_pid=$!
until grep -q "checkpoint at step" "$rule_log" 2>/dev/null; do
    kill -0 $snakemake_pid 2>/dev/null || { tail -30 preempted.log; die "the run ended before a checkpoint"; }
    sleep 0.2
done
job=$(grep -oP 'SLURM job \K\d+' "$rule_log" | head -1)
saved=$(grep -oP 'checkpoint at step \K\d+' "$rule_log" | tail -1)
scancel "$job"
log "cancelled SLURM job $job after the checkpoint at step $saved; waiting for Snakemake's retry"
wait $snakemake_pid || { tail -30 preempted.log; die "the run failed after the cancellation (log: $work/preempted.log)"; }
# the plugin's message for a plain job, or slurmstepd's line in the failed (group) job's log
grep -qE "SLURM-job '$job' failed|JOB $job ON \S+ CANCELLED" preempted.log \
    || { tail -30 preempted.log; die "Snakemake did not report job $job as failed"; }
[[ -f $target && ! -e $target.partial ]] || die "$target unfinished after the retry"
retry_job=$(grep -oP 'SLURM job \K\d+' "$rule_log" | head -1)
[[ $retry_job != "$job" ]] || die "the rule log is still the cancelled job's ($job): no retry ran"
resumed=$(python "$SLURM_TESTS/check_run.py" resumed "$rule_log") || die "the retry (SLURM job $retry_job) started over"
[[ ${resumed##* } -ge $saved ]] || die "resumed at step ${resumed##* }, before the saved step $saved"
python "$SLURM_TESTS/check_run.py" compare expected . || die "resumed latents differ from the uninterrupted run"
log "OK: job $job cancelled after step $saved; retry (SLURM job $retry_job) ${resumed#check_run: }; $((SECONDS - start)) s in all; latents identical"
