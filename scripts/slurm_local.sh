#!/usr/bin/env bash
# A single-node Slurm on this machine (munged, slurmctld, slurmd on localhost) for the sweep's Slurm tests.
#
#   scripts/slurm_local.sh install   apt-get install slurm-wlm and munge (Debian; needs root and the
#                                    package registry); the only subcommand that installs anything
#   scripts/slurm_local.sh start     write /etc/slurm/slurm.conf for this host, start the daemons that
#                                    are not running yet, wait until `sinfo` says idle, record their pids
#   scripts/slurm_local.sh stop      kill exactly the daemons that `start` recorded
#   scripts/slurm_local.sh status    the recorded daemons and `sinfo`
#
# Every subcommand is idempotent: `start` on a running cluster only checks it, `stop` on a stopped one
# says so. Runs as root, without systemd (the daemons fork into the background and outlive this
# script, so `stop` is what ends them). Accounting is off (no slurmdbd): `sacct` does not work, use
# `squeue` and `scontrol show job`. The configuration is Debian's example of these machines
# (shared/slurm/slurm.conf.example) with this host's name, CPUs and memory from `slurmd -C`.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
PIDS=/var/spool/slurm_local.pids # "name pid" per line, only the daemons this script started
LOGS=/var/log/slurm
WAIT_S=${SLURM_LOCAL_WAIT_S:-60}
CONF_CHANGED=0
STARTED=0 # whether this start launched slurmctld (which then read the new file itself)

die() {
    echo "slurm_local.sh: $*" >&2
    exit 1
}

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (it writes /etc/slurm and starts system daemons); rerun with sudo"
}

need_binaries() {
    local missing=()
    for binary in /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sinfo /usr/bin/munge; do
        [ -x "$binary" ] || missing+=("$binary")
    done
    [ ${#missing[@]} = 0 ] || die "${missing[*]} not installed; run: $0 install"
}

# The pid recorded for daemon $1, if it is still that daemon (a recycled pid is never killed).
recorded_pid() {
    local name=$1 pid
    [ -f "$PIDS" ] || return 1
    pid=$(awk -v n="$name" '$1 == n {print $2}' "$PIDS")
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] && echo "$pid"
}

record() {
    local name=$1 pid=$2
    touch "$PIDS"
    { grep -v "^$name " "$PIDS" || true; echo "$name $pid"; } >"$PIDS.tmp"
    mv "$PIDS.tmp" "$PIDS"
}

# Wait until the daemon's pid file names a live process of that name; print the pid.
wait_pidfile() {
    local name=$1 file=$2 pid
    for _ in $(seq 1 100); do
        pid=$(cat "$file" 2>/dev/null || true)
        if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
            echo "$pid"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

write_conf() {
    local host cpus memory conf
    host=$(hostname -s)
    # slurmd -C prints this host's hardware as a NodeName line: take CPUs and RealMemory from it.
    read -r cpus memory < <(/usr/sbin/slurmd -C | awk '/^NodeName=/ {
        for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } print v["CPUs"], v["RealMemory"] }')
    if [ -z "$cpus" ] || [ -z "$memory" ]; then
        die "slurmd -C printed no CPUs/RealMemory; run it to see why"
    fi
    conf=$(
        cat <<EOF
# Written by scripts/slurm_local.sh for the single-node test cluster on $host.
ClusterName=local
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# A requeued job waits out its credential's lifetime (cred_expire, default 120 s) before it may start
# again, and pending jobs wait for the next scheduling pass (default every 60 s): both shortened, so a
# requeued test job restarts within seconds.
AuthInfo=cred_expire=5
SchedulerParameters=sched_interval=2,bf_interval=1
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmUser=root
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    )
    mkdir -p /etc/slurm
    # Rewritten only when it changes, so a second start leaves a running cluster's file alone.
    if [ "$(cat "$CONF" 2>/dev/null)" != "$conf" ]; then
        printf '%s\n' "$conf" >"$CONF"
        echo "wrote $CONF (NodeName=$host CPUs=$cpus RealMemory=$memory)"
        CONF_CHANGED=1
    fi
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0 # a munged already answers (ours or the system's): do not start a second one
    fi
    if [ ! -s /etc/munge/munge.key ]; then
        /usr/sbin/mungekey --create --keyfile=/etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    rm -f /run/munge/munged.pid
    # --force: munged refuses otherwise, warning that root owns the log folder.
    /usr/sbin/munged --force
    record munged "$(wait_pidfile munged /run/munge/munged.pid)" || die "munged did not start; see /var/log/munge/munged.log"
    munge -n | unmunge >/dev/null || die "munged started but munge -n | unmunge fails; see /var/log/munge/munged.log"
}

start_daemon() {
    local name=$1 pidfile=$2
    if pgrep -x "$name" >/dev/null; then
        return 0 # already running (started by us before, or by someone else): leave it be
    fi
    rm -f "$pidfile"
    "/usr/sbin/$name"
    [ "$name" = slurmctld ] && STARTED=1
    record "$name" "$(wait_pidfile "$name" "$pidfile")" || die "$name did not start; see $LOGS/$name.log"
}

wait_idle() {
    local state
    for _ in $(seq 1 "$WAIT_S"); do
        state=$(sinfo -h -o %T 2>/dev/null | head -n1 || true)
        case "$state" in
            idle | mixed | allocated | completing) return 0 ;; # "idle*" (not responding yet) is no match
        esac
        sleep 1
    done
    die "the node did not come up idle in ${WAIT_S}s (sinfo state: ${state:-none}); see $LOGS/slurmctld.log and $LOGS/slurmd.log"
}

cmd_install() {
    need_root
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y slurm-wlm munge
}

cmd_start() {
    need_root
    need_binaries
    write_conf
    mkdir -p /var/spool/slurmctld /var/spool/slurmd "$LOGS"
    start_munge
    start_daemon slurmctld /run/slurmctld.pid
    start_daemon slurmd /run/slurmd.pid
    if [ "$CONF_CHANGED" = 1 ] && [ "$STARTED" = 0 ]; then
        scontrol reconfigure # daemons that were already running read the new file
    fi
    wait_idle
    # A node that was down at an earlier stop can come back "drained"; resume it so jobs run.
    if sinfo -h -o %T | grep -qE 'drain|down'; then
        scontrol update NodeName="$(hostname -s)" State=RESUME
        wait_idle
    fi
    sinfo
}

cmd_stop() {
    local pid stopped=0
    # slurmd first, munged last: the Slurm daemons talk through munge until they are gone.
    for name in slurmd slurmctld munged; do
        if pid=$(recorded_pid "$name"); then
            kill "$pid"
            for _ in $(seq 1 100); do
                [ -d "/proc/$pid" ] || break
                sleep 0.1
            done
            [ -d "/proc/$pid" ] && kill -KILL "$pid"
            echo "stopped $name ($pid)"
            stopped=1
        fi
    done
    rm -f "$PIDS"
    [ "$stopped" = 1 ] || echo "nothing to stop: no daemon started by $0 is running"
}

cmd_status() {
    local pid any=0
    for name in munged slurmctld slurmd; do
        if pid=$(recorded_pid "$name"); then
            echo "$name $pid"
            any=1
        fi
    done
    [ "$any" = 1 ] || echo "no daemon started by $0 is running"
    sinfo 2>&1 || true
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) die "usage: $0 install|start|stop|status" ;;
esac
