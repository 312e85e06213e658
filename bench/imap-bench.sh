#!/bin/bash
# imap-bench.sh - Postern's imapd against Dovecot's imap on this machine, same users, same mail, same load.
#
#   bench/imap-bench.sh [-r ROUNDS] [-c CLIENTS] [-t SECONDS] [-m MESSAGES] [-i IDLE]
#                       [-H sha512|yescrypt] [-p PHASES] [-P PROCESSES] [-F FSYNC] [-J] [-U] [-k] [-s]
#
# Run as root (Dovecot's master starts as root). Installs dovecot-imapd when
# missing (with no system Dovecot started: scripts/install-deps.sh), builds
# Postern (build/, which holds bench/imaptest/imapload, the load tool), then:
#   - starts a Postern instance on free loopback ports with example.test and
#     20 users bench01..20, each with MESSAGES messages (default 200: 80 %
#     1-8 KB, 18 % 8-60 KB, 2 % 60-300 KB) delivered over SMTP;
#   - copies those Maildirs (not Postern's index) for Dovecot and gives
#     Dovecot the users with the very password hashes of Postern's directory
#     (passwd-file, {CRYPT}: the same hash and cost on both sides); a private
#     Dovecot (dovecot -c its own config: base_dir, state and logs under the
#     temporary directory, imap on one loopback port, Maildir, a static userdb
#     as nobody, its default process-per-connection services with the limits
#     raised for the idle connections); its index of every mailbox is built
#     (doveadm index) before any timing;
#   - runs bench/imap_bench.py: interleaved rounds of logins, FETCH headers,
#     FETCH bodies, SEARCH, STORE, APPEND and an imaptest-like mix, CLIENTS
#     clients each, SECONDS each (APPEND: 25000 APPENDs on each system, so
#     that both leave the same deletions behind; bench/imap_bench.py says
#     why), then memory per idle connection (IDLE clients logged in,
#     selected and in IDLE). Each system runs in its own
#     cgroup when one can be made, for its CPU time and its processes.
# Prints the rounds, the medians and the ratios; stops both and removes the
# temporary directory (-k keeps it). Defaults: -r 3 -c 20 -t 10 -m 200 -i 500
# -H sha512. -H sha512 gives the users SHA512-CRYPT hashes (Dovecot's usual
# scheme); -H yescrypt Postern's default, whose cost dominates a login on
# both sides. -p runs some phases only (logins,fetchhdr,fetchbody,search,
# store,append,mix). -P sets Postern's [imapd] processes (default: its
# default, one per CPU; -P 1 is imapd on one process). -F sets Dovecot's
# mail_fsync (default: Dovecot's default, optimized: "fsync when it's
# necessary for data safety": per APPEND, strace shows an fsync of the
# message file, an fdatasync of cur/ and one of dovecot-uidlist, as many
# syncs as Postern's file, directory and (before its row commit went
# unsynced) index; its index files are written without a sync); -F always
# fsyncs after every write, index files too.
# Each server runs on a file system of its own: a fresh 8 GiB ext4 image on
# a loop device, made under /var/tmp, without a journal like this
# machine's root (see bench_fs in bench/lib/common.sh). On one file system
# both servers' mail lands in the same block groups, and without a journal
# ext4 keeps the inodes one server's clean-up freed out of reuse for
# minutes while every file the other creates in those groups scans past
# them (docs/performance.md, imapd Run 7). -J gives the two images a
# journal, as a mail server's disk would have; -U runs both straight under
# /var/tmp, on its one file system, as the bench did before (and does when
# no loop device can be mounted).
# -s sets both up, prints their ports and an imapload command, and waits
# (for profiling by hand) until it is stopped.
set -euo pipefail

ROUNDS=3
CLIENTS=20
SECONDS_PER=10
MESSAGES=200
IDLE=500
HASH=sha512
PHASES=""
PROCESSES=""
FSYNC=""
JOURNAL=0
ONEFS=0
KEEP=0
HOLD=0
while getopts "r:c:t:m:i:H:p:P:F:JUks" opt; do
	case $opt in
	r) ROUNDS=$OPTARG ;;
	c) CLIENTS=$OPTARG ;;
	t) SECONDS_PER=$OPTARG ;;
	m) MESSAGES=$OPTARG ;;
	i) IDLE=$OPTARG ;;
	H) HASH=$OPTARG ;;
	p) PHASES=$OPTARG ;;
	P) PROCESSES=$OPTARG ;;
	F) FSYNC=$OPTARG ;;
	J) JOURNAL=1 ;;
	U) ONEFS=1 ;;
	k) KEEP=1 ;;
	s) HOLD=1 ;;
	*)
		echo "usage: $0 [-r ROUNDS] [-c CLIENTS] [-t SECONDS] [-m MESSAGES] [-i IDLE] [-H sha512|yescrypt] [-p PHASES] [-P PROCESSES] [-F optimized|always|never] [-J] [-U] [-k] [-s]" >&2
		exit 2
		;;
	esac
done
USERS=20
. "$(dirname "$0")/lib/common.sh"
bench_init
trap bench_cleanup EXIT
if [ "$ONEFS" = 1 ]; then
	[ "$JOURNAL" = 1 ] && bench_fs "$W" 1
elif ! { bench_fs "$W/postern" "$JOURNAL" && bench_fs "$W/dovecot" "$JOURNAL"; }; then
	bench_fs_undo
	echo "cannot mount an image on a loop device: both servers on /var/tmp's file system (-U)" >&2
	[ "$JOURNAL" = 1 ] && echo "(-J is not possible without one either)" >&2
fi
IMAPLOAD="$ROOT/$BUILD/bench/imaptest/imapload"
if [ ! -x "$IMAPLOAD" ]; then
	# A build without the tests option has no bench executables: compile the one file.
	IMAPLOAD="$W/imapload"
	cc -O2 -std=gnu11 -o "$IMAPLOAD" "$ROOT/bench/imaptest/imapload.c"
fi
read -r P_SMTP P_SUB P_SUBS P_POP P_POPS P_IMAP P_IMAPS D_IMAP < <(bench_ports 8)
bench_cgroups dovecot
CG_DOVECOT=$CG_OTHER
DV="$W/dovecot"
DV_RUN="$DV/run"
PD="$W/postern"
ulimit -n $((IDLE * 4 + 4096)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# ---- Postern ----
bench_postern_config "$PD" "$P_SMTP" "$P_SUB" "$P_SUBS" "$P_POP" "$P_POPS" "$P_IMAP" "$P_IMAPS"
echo "max_connections = $((IDLE + CLIENTS + 100))" >>"$PD/postern.conf"   # the [imapd] section is last
[ -z "$PROCESSES" ] || echo "processes = $PROCESSES" >>"$PD/postern.conf"
bench_postern_start "$PD"
for i in $(seq 1 "$USERS"); do
	u=$(printf 'bench%02d' "$i")
	bench_postern_user "$PD" "$u@example.test" "$HASH"
done
echo "filling the mailboxes over SMTP ($USERS x $MESSAGES messages)..." >&2
"$PY" "$ROOT/bench/imap_bench.py" fill --port "$P_SMTP" --users "$USERS" --messages "$MESSAGES"
MAIL="$PD/var/mail/example.test"
for _ in $(seq 1200); do
	n=$(find "$MAIL"/bench*/new "$MAIL"/bench*/cur -type f 2>/dev/null | wc -l)
	[ "$n" -ge $((USERS * MESSAGES)) ] && break
	sleep 0.1
done
echo "delivered: $n messages" >&2

# ---- Dovecot: the same Maildirs, the same hashes ----
bench_dovecot_users "$DV" "$PD" "$MAIL"/bench*
LIMIT=$((IDLE + CLIENTS + 100))
{
bench_dovecot_conf "$DV" postern-imap-bench imap
cat <<EOF2
# Room for the idle connections: one imap process each (Dovecot's default is 100 processes per
# service and 10 connections per user and address).
default_process_limit = $LIMIT
default_client_limit = $((LIMIT * 4))
mail_max_userip_connections = $LIMIT
${FSYNC:+mail_fsync = $FSYNC}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $D_IMAP
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
EOF2
} >"$DV/dovecot.conf"
bench_dovecot_start "$DV" "$D_IMAP"
echo "building Dovecot's indexes..." >&2
for i in $(seq 1 "$USERS"); do
	in_cgroup "$CG_DOVECOT" doveadm -c "$DV/dovecot.conf" index -u "$(printf 'bench%02d' "$i")@example.test" INBOX
done

if [ "$HOLD" = 1 ]; then
	echo "postern imapd: 127.0.0.1:$P_IMAP (pids: $(cat "$CG_POSTERN/cgroup.procs" 2>/dev/null | tr '\n' ' '))"
	echo "dovecot imap:  127.0.0.1:$D_IMAP (log $DV/dovecot.log)"
	echo "load: $IMAPLOAD -p PORT -c $CLIENTS -n $USERS -u 'bench%02u@example.test' -w bench-password -M sessions -x fetchhdr=1"
	echo "waiting; stop with Ctrl-C or SIGTERM"
	trap 'exit 0' INT TERM
	while :; do sleep 1; done
fi

# ---- the rounds ----
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)," \
	"$(sed -n 's/^PRETTY_NAME="\(.*\)"/\1/p' /etc/os-release); Dovecot $(dovecot --version | cut -d' ' -f1);" \
	"Postern $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "password hashes: $HASH (the same hash on both sides)"
echo "mailboxes: $USERS users x $MESSAGES messages, $(du -sb --exclude='index.sqlite*' "$MAIL" | cut -f1) bytes on disk"
echo "CPU accounting: $CPU_KIND${CG_BASE:+ ($CG_BASE)}"
"$PY" "$ROOT/bench/imap_bench.py" run --imapload "$IMAPLOAD" --rounds "$ROUNDS" --clients "$CLIENTS" \
	--users "$USERS" --seconds "$SECONDS_PER" --idle "$IDLE" ${PHASES:+--phases "$PHASES"} --cpu "$CPU_KIND" \
	--system "postern:$P_IMAP:$CG_POSTERN" --system "dovecot:$D_IMAP:$CG_DOVECOT" --markdown "$W/result.md"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
