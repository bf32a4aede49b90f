#!/usr/bin/env bash
# A single-node Slurm on loopback, for the real-Slurm test and by hand: munged, slurmctld and slurmd, with their
# config, state and logs under DIR. Prints `export SLURM_CONF=...` for sbatch/squeue; `stop` ends the daemons.
#
#   bench/slurm_node.sh start DIR     # needs Debian's slurm-wlm and munge (apt-get install -y slurm-wlm munge)
#   bench/slurm_node.sh stop DIR
set -euo pipefail
what=${1:?start or stop}; dir=$(realpath -m "${2:?a folder for the node}")
mkdir -p "$dir"/{state,spool,log,munge}
if [ "$what" = stop ]; then
  for pid in "$dir"/slurmd.pid "$dir"/slurmctld.pid "$dir"/munge/munged.pid; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
  done
  exit 0
fi
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
cat > "$dir/slurm.conf" <<CONF
ClusterName=scratch
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SlurmctldPort=6817
SlurmdPort=6818
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
munged --socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" \
  --seed-file="$dir/munge/munged.seed" --force 2>/dev/null || true
export SLURM_CONF=$dir/slurm.conf
# the daemons find munge's socket where munge puts it by default; point them at ours
ln -sf "$dir/munge/munge.socket" /run/munge/munge.socket.2 2>/dev/null || { mkdir -p /run/munge && ln -sf "$dir/munge/munge.socket" /run/munge/munge.socket.2; }
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 1 30); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 1
done
echo "slurm_node.sh: the node did not come up; see $dir/log" >&2
exit 1
