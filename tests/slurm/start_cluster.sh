#!/usr/bin/env bash
# Start a throwaway single-node SLURM cluster on this host (root, Debian) for the workflow tests.
#
# Installs slurm-wlm + munge when missing, writes /etc/slurm/slurm.conf for this host, starts
# munged, slurmctld and slurmd in the background and records their PIDs in $STATE/pids, then
# waits until `sbatch --wait --wrap hostname` succeeds. Stop it with tests/slurm/stop_cluster.sh.
#
# The node advertises one fake GPU (gres `gpu`, backed by /dev/null) so that the `gpu: 1`
# rules are submitted exactly as on a real cluster (`sbatch --gpus=1`). Nothing uses it: the
# jobs see CUDA_VISIBLE_DEVICES=0, torch has no CUDA, and facelatent.devices.pick_device picks
# the CPU. FACELATENT_SLURM_FAKE_GPUS=0 gives a node without gres, like a CPU-only cluster; run
# the workflow there with `--set-resources project_shard:gpu=0 train_au_classifier:gpu=0`.
#
# Environment: FACELATENT_SLURM_STATE (default /tmp/facelatent-slurm), FACELATENT_SLURM_FAKE_GPUS
# (default 1), FACELATENT_SLURM_MIN_MEM_MB (default 16000, see below).
set -euo pipefail

STATE=${FACELATENT_SLURM_STATE:-/tmp/facelatent-slurm}
FAKE_GPUS=${FACELATENT_SLURM_FAKE_GPUS:-1}
# The rules declare production memory (project_shard: 8000 MB); the demo itself needs far less.
# A smaller machine still advertises this much (slurmd runs with config_overrides) so they schedule.
MIN_MEM_MB=${FACELATENT_SLURM_MIN_MEM_MB:-16000}
CONF=/etc/slurm/slurm.conf
# First line of the config this script writes; stop_cluster.sh removes only a file that has it.
MARKER="# Written by tests/slurm/start_cluster.sh: a single-node test cluster, no cgroups, no accounting."

die() { echo "start_cluster: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and writes /etc/slurm)"
if [[ -s $STATE/pids ]]; then
    die "$STATE/pids exists: a cluster may still be running; run tests/slurm/stop_cluster.sh first"
fi
if [[ -f $CONF && $(head -1 "$CONF") != "$MARKER" ]]; then
    die "$CONF exists and was not written by this script: this host has a real SLURM setup"
fi

install_packages() {
    if command -v slurmctld >/dev/null && command -v munged >/dev/null; then
        return
    fi
    echo "start_cluster: installing slurm-wlm and munge"
    # Debian's policy-rc.d keeps the post-install scripts from starting services; we start them.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null; }
}

make_munge_key() {
    install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
    install -d -o munge -g munge -m 0755 /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
}

# "CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=23000" -> one field
node_field() { slurmd -C | head -1 | tr ' ' '\n' | sed -n "s/^$1=//p"; }

write_slurm_conf() {
    local host cpus sockets cores threads mem gres=""
    host=$(hostname -s)
    cpus=$(node_field CPUs)
    sockets=$(node_field SocketsPerBoard)
    cores=$(node_field CoresPerSocket)
    threads=$(node_field ThreadsPerCore)
    mem=$(node_field RealMemory)
    (( mem < MIN_MEM_MB )) && mem=$MIN_MEM_MB
    mkdir -p /etc/slurm "$STATE"/{ctld,slurmd,log}
    if (( FAKE_GPUS > 0 )); then
        gres=" Gres=gpu:$FAKE_GPUS"
        # Without a device file slurmd refuses the gres; /dev/null stands in (no cgroup confines it).
        { for ((i = 0; i < FAKE_GPUS; i++)); do echo "NodeName=$host Name=gpu File=/dev/null"; done; } \
            > /etc/slurm/gres.conf
    else
        rm -f /etc/slurm/gres.conf
    fi
    cat > "$CONF" <<EOF
$MARKER
ClusterName=facelatent-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# squeue must still list finished jobs when the executor asks (>= 3 x its first status delay,
# >= 180 s); an hour also lets the harness read every job's GPU request after the run
MinJobAge=3600
ReturnToService=2
# the node keeps the configured memory even where the machine has less (see MIN_MEM_MB)
SlurmdParameters=config_overrides
$( (( FAKE_GPUS > 0 )) && echo "GresTypes=gpu")
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus Sockets=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem$gres State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

start_daemons() {
    : > "$STATE/pids"
    setpriv --reuid=munge --regid=munge --init-groups munged -F >"$STATE/log/munged.out" 2>&1 &
    echo "munged $!" >> "$STATE/pids"
    for _ in $(seq 50); do munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.2; done
    munge -n </dev/null >/dev/null 2>&1 || die "munged did not start (see $STATE/log/munged.out)"
    slurmctld -D -i >"$STATE/log/slurmctld.out" 2>&1 &
    echo "slurmctld $!" >> "$STATE/pids"
    slurmd -D >"$STATE/log/slurmd.out" 2>&1 &
    echo "slurmd $!" >> "$STATE/pids"
}

wait_until_ready() {
    local deadline=$((SECONDS + 120))
    until timeout 30 sbatch --quiet --wait --wrap hostname -o /dev/null 2>/dev/null; do
        (( SECONDS < deadline )) || die "no job ran within 120 s (logs in $STATE/log)"
        # a node that registered before slurmctld was ready may need a nudge
        scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
        sleep 2
    done
}

install_packages
make_munge_key
write_slurm_conf
start_daemons
wait_until_ready
echo "start_cluster: ready in ${SECONDS}s; PIDs in $STATE/pids; $(sinfo -h -o '%P %D %c CPUs %m MB %G')"
