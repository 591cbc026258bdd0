# Shared by up and down: where the one-machine cluster keeps its state and how
# its daemons are found. Sourced, never run.

# shellcheck shell=bash
set -euo pipefail

CLUSTER_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$CLUSTER_SRC/../.." && pwd)
# State lives in .cluster/, or where that symlink points when the checkout
# sits below a directory other users cannot enter (see up).
if [[ -n ${SLURMGATE_CLUSTER_DIR:-} ]]; then
	STATE=$SLURMGATE_CLUSTER_DIR
elif [[ -L $REPO/.cluster ]]; then
	STATE=$(readlink -f "$REPO/.cluster")
else
	STATE=$REPO/.cluster
fi
CLUSTER_NAME=${SLURMGATE_CLUSTER_NAME:-slurmgate}

# Ports away from the defaults, so a site's own Slurm, MariaDB or PostgreSQL
# on this machine is never disturbed.
MARIADB_PORT=13306
POSTGRES_PORT=15432
SLURMCTLD_PORT=16817
SLURMDBD_PORT=16819
SLURMRESTD_PORT=16820
GATEWAY_PORT=18080
NODES=(c1 c2 g1)
declare -A SLURMD_PORT=([c1]=17001 [c2]=17002 [g1]=17003)

# Test users with fixed ids, so file ownership in fixtures and tests is stable.
declare -A TEST_UIDS=([alice]=2001 [bob]=2002 [carol]=2003)
RESTD_USER=slurmrestd
RESTD_UID=2090

export SLURM_CONF=$STATE/etc/slurm.conf

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() { printf 'cluster: %s\n' "$*" >&2; exit 1; }

# pid_alive NAME: the daemon recorded in run/NAME.pid is running.
pid_alive() {
	local f=$STATE/run/$1.pid pid
	[[ -s $f ]] || return 1
	pid=$(<"$f")
	[[ -d /proc/$pid ]] || return 1
	# A recycled pid belongs to another program: compare the executable name.
	grep -qa -- "$2" "/proc/$pid/cmdline" 2>/dev/null
}

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_for() {
	local what=$1 limit=$2 start=$SECONDS
	shift 2
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS - start >= limit)); then
			log "timed out after ${limit}s waiting for $what; last attempt said:"
			"$@" >&2 || true
			return 1
		fi
		sleep 0.1
	done
}
