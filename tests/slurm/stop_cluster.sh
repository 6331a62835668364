#!/usr/bin/env bash
# Stop the test cluster that tests/slurm/start_cluster.sh started: cancel its jobs, end exactly
# the daemons whose PIDs it recorded (never by name), and remove the slurm.conf it wrote. Safe to
# call twice. The config must go: while /etc/slurm/slurm.conf names a controller that is down,
# `scontrol show config` waits ~9 s, and the SLURM executor plugin runs it whenever Snakemake
# starts, so every `snakemake` command on the host (even a local run) would start 9 s slower.
set -uo pipefail

STATE=${FACELATENT_SLURM_STATE:-/tmp/facelatent-slurm}
PIDS=$STATE/pids
MARKER="# Written by tests/slurm/start_cluster.sh"

remove_config() {
    local conf=/etc/slurm/slurm.conf
    if [[ -f $conf && $(head -1 "$conf") == "$MARKER"* ]]; then
        rm -f "$conf" /etc/slurm/gres.conf
    fi
}

[[ -s $PIDS ]] || { remove_config; echo "stop_cluster: no $PIDS; nothing to stop"; exit 0; }

# Jobs first, so that slurmd can still end their steps (slurmstepd is not our child).
if timeout 10 squeue -h -o %i >/dev/null 2>&1; then
    timeout 10 scancel --partition=debug >/dev/null 2>&1 || true
    for _ in $(seq 20); do
        [[ -z $(timeout 5 squeue -h -t running,completing -o %i 2>/dev/null) ]] && break
        sleep 0.5
    done
fi

# slurmd, slurmctld, then munged: the reverse of the start order.
mapfile -t entries < <(tac "$PIDS")
for entry in "${entries[@]}"; do
    read -r name pid <<<"$entry"
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        echo "stop_cluster: $name ($pid) ignored SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
done
rm -f "$PIDS"
remove_config
echo "stop_cluster: stopped ${#entries[@]} daemons"
