#!/usr/bin/env bash
# A single-node Slurm of this host for tests and benchmarks, sourced: start_slurm_cluster DIR
# starts munged, slurmctld and slurmd (Debian's slurm-wlm 22.05 and munge) as the caller's own
# processes, everything under DIR (keys, state, spool, logs, slurm.conf) and on free ports, this
# host the one node with 4 CPUs (proctrack/linuxproc, task/none, no cgroups, OverSubscribe), and
# exports SLURM_CONF for sbatch, srun, squeue and scancel; stop_slurm_cluster DIR cancels every
# job and stops the daemons. start_slurm_cluster returns 1, with the daemons' logs on stderr, when
# the cluster does not come up.

stop_slurm_cluster() {  # DIR
  local dir=$1 daemon
  [[ -n ${SLURM_CONF:-} ]] && scancel --quiet --user="$(id -un)" 2> /dev/null || true
  for daemon in slurmd slurmctld munged; do
    [[ -f "$dir/$daemon.pid" ]] && kill "$(cat "$dir/$daemon.pid")" 2> /dev/null || true
  done
  sleep 1
  for daemon in slurmd slurmctld munged; do
    [[ -f "$dir/$daemon.pid" ]] && kill -9 "$(cat "$dir/$daemon.pid")" 2> /dev/null || true
  done
  return 0
}

start_slurm_cluster() {  # DIR
  local dir=$1 tool ctld_port slurmd_port node
  for tool in munged slurmctld slurmd sbatch srun scancel squeue sinfo; do
    command -v "$tool" > /dev/null ||
      { echo "$tool is not installed (scripts/setup.sh installs slurm-wlm and munge)" >&2; return 1; }
  done
  mkdir -p "$dir"/{state,spool,log} "$dir/munge"
  chmod 755 "$dir/munge"
  head -c 1024 /dev/urandom > "$dir/munge.key"
  chmod 600 "$dir/munge.key"
  munged -F -f --socket="$dir/munge/socket" --key-file="$dir/munge.key" --log-file="$dir/log/munged.log" \
    --pid-file="$dir/munged.pid.file" --seed-file="$dir/munge.seed" > "$dir/log/munged.out" 2>&1 &
  echo $! > "$dir/munged.pid"
  read -r ctld_port slurmd_port < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
  node=$(hostname -s)
  cat > "$dir/slurm.conf" << EOF
ClusterName=trafficid
SlurmctldHost=$node(127.0.0.1)
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
AuthInfo=socket=$dir/munge/socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid.file
SlurmdPidFile=$dir/slurmd.pid.file
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
NodeName=$node NodeAddr=127.0.0.1 CPUs=4 RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
  export SLURM_CONF="$dir/slurm.conf"
  for _ in $(seq 50); do [[ -S "$dir/munge/socket" ]] && break; sleep 0.1; done
  [[ -S "$dir/munge/socket" ]] || { echo "munged did not start: $(cat "$dir"/log/munged.*)" >&2; return 1; }
  slurmctld -D -c -f "$SLURM_CONF" > "$dir/log/slurmctld.out" 2>&1 &
  echo $! > "$dir/slurmctld.pid"
  sleep 1
  slurmd -D -f "$SLURM_CONF" > "$dir/log/slurmd.out" 2>&1 &
  echo $! > "$dir/slurmd.pid"
  for _ in $(seq 100); do [[ $(sinfo -h -o %T 2> /dev/null) == idle ]] && return 0; sleep 0.2; done
  echo "the single-node cluster did not come up: $(sinfo 2>&1; tail -n 20 "$dir"/log/*)" >&2
  return 1
}
