#!/bin/bash
# smtp-bench.sh - Postern against Postfix on this machine, with Postfix's own load generator.
#
#   bench/smtp-bench.sh [-m MESSAGES] [-r ROUNDS] [-s SESSIONS] [-l LENGTH] [-k] [-o postern|postfix]
#
# Run as root. Installs Postfix when missing (debconf "No configuration", so
# it never becomes the system's MTA), builds Postern (build/), then starts:
#   - a private Postfix: its own config_directory, queue_directory and
#     data_directory under a temporary directory, inet_interfaces = 127.0.0.1,
#     smtpd on a free port (master.cf), no chroot, virtual(8) delivery into
#     Maildir for the one virtual domain example.test;
#   - a Postern instance on free loopback ports, with example.test and
#     alice@example.test;
# each in its own cgroup when one can be made (for CPU accounting). Then, in
# interleaved rounds (postern, postfix, postern, ...), it runs
#   smtp-source -s SESSIONS -l LENGTH -m MESSAGES -c -f sender@example.test \
#     -t alice@example.test 127.0.0.1:PORT
# (one connection per message: smtp-source's default without -d) and times
# each round from its start until every message is a file in alice's
# Maildir new/. Prints messages per second, CPU time per message, and the
# ratios; both systems are stopped and removed afterwards (-k keeps the
# temporary directory; -o runs only one of the two). Defaults: -m 5000 -r 3 -s 20 -l 4096.
set -euo pipefail

MESSAGES=5000
ROUNDS=3
SESSIONS=20
LENGTH=4096
KEEP=0
ONLY=""
while getopts "m:r:s:l:ko:" opt; do
	case $opt in
	m) MESSAGES=$OPTARG ;;
	r) ROUNDS=$OPTARG ;;
	s) SESSIONS=$OPTARG ;;
	l) LENGTH=$OPTARG ;;
	k) KEEP=1 ;;
	o) ONLY=$OPTARG ;;
	*)
		echo "usage: $0 [-m MESSAGES] [-r ROUNDS] [-s SESSIONS] [-l LENGTH] [-k] [-o postern|postfix]" >&2
		exit 2
		;;
	esac
done
. "$(dirname "$0")/lib/common.sh"
bench_init
read -r P_SMTP P_SUB P_SUBS P_POP P_POPS P_IMAP P_IMAPS PF_SMTP < <(bench_ports 8)
bench_cgroups
trap bench_cleanup EXIT

want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }
SYSTEMS=()

# ---- Postfix ----
PF="$W/postfix"
if want postfix; then
	bench_postfix_config "$PF" "$PF_SMTP"
	bench_postfix_start "$PF"
	SYSTEMS+=(--system "postfix:$PF_SMTP:$PF/vmail/example.test/alice:$CG_POSTFIX")
fi

# ---- Postern ----
PD="$W/postern"
if want postern; then
	bench_postern_config "$PD" "$P_SMTP" "$P_SUB" "$P_SUBS" "$P_POP" "$P_POPS" "$P_IMAP" "$P_IMAPS"
	bench_postern_start "$PD"
	SYSTEMS=(--system "postern:$P_SMTP:$PD/var/mail/example.test/alice:$CG_POSTERN" "${SYSTEMS[@]}")
fi

# ---- the rounds ----
bench_machine
echo "command: smtp-source -s $SESSIONS -l $LENGTH -m $MESSAGES -c -f sender@example.test -t alice@example.test 127.0.0.1:PORT"
echo "CPU accounting: $CPU_KIND${CG_BASE:+ ($CG_BASE)}"
"$PY" "$ROOT/bench/smtp_bench.py" --rounds "$ROUNDS" --messages "$MESSAGES" --sessions "$SESSIONS" \
	--length "$LENGTH" --cpu "$CPU_KIND" "${SYSTEMS[@]}" --markdown "$W/result.md"
