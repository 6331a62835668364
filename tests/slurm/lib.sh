# Shared by the tests/slurm/*.sh harness scripts (sourced, not run).

SLURM_TESTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SLURM_TESTS/../.." && pwd)
STATE=${FACELATENT_SLURM_STATE:-/tmp/facelatent-slurm}
export PATH="$REPO/.venv/bin:$PATH"

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# A copy of the checkout (tracked and untracked-but-not-ignored files; outside git, all but the
# outputs) plus the fetched models, so that runs never touch the checkout's results/.
copy_checkout() {
    local dest=$1
    mkdir -p "$dest/resources/models"
    if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$REPO" && git ls-files -z -co --exclude-standard \
            | while IFS= read -r -d '' f; do [[ -f $f ]] && printf '%s\0' "$f"; done \
            | xargs -0 cp --parents -t "$dest")
    else
        tar -C "$REPO" --exclude=./.venv --exclude=./.snakemake --exclude=./results --exclude=./logs \
            --exclude=./benchmarks --exclude=./slurm --exclude=__pycache__ -cf - . | tar -C "$dest" -xf -
    fi
    cp "$REPO"/resources/models/*.safetensors "$dest/resources/models/"
    # dlib's models, when fetched (`facelatent fetch-models`): spares each run the 100 MB sdist download
    for dat in "$REPO"/resources/models/*.dat; do if [[ -f $dat ]]; then cp "$dat" "$dest/resources/models/"; fi; done
    if [[ -d $REPO/resources/demo_photos ]]; then
        cp -r "$REPO/resources/demo_photos" "$dest/resources/"
    fi
}

# Start the test cluster unless one is up; returns 0 when this call started it (so it must stop it).
ensure_cluster() {
    if [[ -s $STATE/pids ]] && timeout 10 sinfo -h >/dev/null 2>&1; then
        log "reusing the running test cluster ($STATE/pids)"
        return 1
    fi
    "$SLURM_TESTS/start_cluster.sh" >&2
}

# Run a command under `timeout -k 30 LIMIT` with stdout+stderr in LOGFILE; prints the wall seconds.
timed_run() {
    local limit=$1 logfile=$2 start=$SECONDS rc=0
    shift 2
    timeout -k 30 "$limit" "$@" >"$logfile" 2>&1 || rc=$?
    echo $((SECONDS - start))
    return $rc
}
