#!/bin/bash
# deliver-drain.sh - how fast Postern's queued empties a full queue into one
# Maildir: local delivery alone, without SMTP competing for the CPU.
#
#   bench/deliver-drain.sh [-m MESSAGES] [-r ROUNDS] [-l LENGTH] [-w WORKERS] [-k]
#
# Run as root. Postern only (an A/B tool for the delivery path: run it from
# two trees, one after the other, on the same machine). Uses the Postern
# set-up of bench/lib/common.sh (as smtp-bench.sh), then per round:
# `postern queue pause`, smtp-source -s 20 -l LENGTH -m MESSAGES into the
# queue (every message acknowledged, so committed), then `postern queue
# resume`, timed until all MESSAGES are files in alice's Maildir new/.
# Prints messages per second and the CPU time of Postern's cgroup per
# message over the drain. -w sets [queued] delivery_workers (else the
# default). Defaults: -m 3000 -r 3 -l 4096.
set -euo pipefail

MESSAGES=3000
ROUNDS=3
LENGTH=4096
KEEP=0
WORKERS=
ONLY=postern
while getopts "m:r:l:w:k" opt; do
	case $opt in
	m) MESSAGES=$OPTARG ;;
	r) ROUNDS=$OPTARG ;;
	l) LENGTH=$OPTARG ;;
	w) WORKERS=$OPTARG ;;
	k) KEEP=1 ;;
	*)
		echo "usage: $0 [-m MESSAGES] [-r ROUNDS] [-l LENGTH] [-w WORKERS] [-k]" >&2
		exit 2
		;;
	esac
done
. "$(dirname "$0")/lib/common.sh"
bench_init
read -r P_SMTP P_SUB P_SUBS P_POP P_POPS P_IMAP P_IMAPS < <(bench_ports 7)
bench_cgroups
trap bench_cleanup EXIT

PD="$W/postern"
bench_postern_config "$PD" "$P_SMTP" "$P_SUB" "$P_SUBS" "$P_POP" "$P_POPS" "$P_IMAP" "$P_IMAPS"
if [ -n "$WORKERS" ]; then printf '[queued]\ndelivery_workers = %s\n' "$WORKERS" >>"$PD/postern.conf"; fi
bench_postern_start "$PD"
NEW="$PD/var/mail/example.test/alice/new"
pq() { "$POSTERN" -c "$PD/postern.conf" queue "$@" >/dev/null; }

bench_machine
echo "delivery_workers: ${WORKERS:-default}"
echo "fill: smtp-source -s 20 -l $LENGTH -m $MESSAGES -c -f sender@example.test -t alice@example.test (queue paused)"
for r in $(seq "$ROUNDS"); do
	pq pause
	before=0
	[ -d "$NEW" ] && before=$(find "$NEW" -maxdepth 1 -type f | wc -l)
	smtp-source -s 20 -l "$LENGTH" -m "$MESSAGES" -c -f sender@example.test -t alice@example.test \
		"127.0.0.1:$P_SMTP" >/dev/null
	sleep 2   # the disk settles after the fill
	"$PY" - "$NEW" "$((before + MESSAGES))" "$CPU_KIND" "$CG_POSTERN" "$MESSAGES" "$r" "$POSTERN" \
		"$PD/postern.conf" <<'PYEOF'
import os, subprocess, sys, time
sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
from smtp_bench import count_files, cpu_seconds
new, want, kind, cg, n, r, postern, conf = sys.argv[1:]
want, n = int(want), int(n)
c0, t0 = cpu_seconds(kind, cg), time.monotonic()
subprocess.run([postern, "-c", conf, "queue", "resume"], check=True, stdout=subprocess.DEVNULL)
while count_files(new) < want:
    if time.monotonic() - t0 > 600:
        sys.exit(f"round {r}: only {count_files(new)} of {want} files after 600 s")
    time.sleep(0.005)
dt, cpu = time.monotonic() - t0, cpu_seconds(kind, cg) - c0
print(f"round {r} drain {dt:6.2f} s  {n / dt:7.1f} msg/s  {cpu * 1000 / n:5.2f} ms CPU/msg")
PYEOF
done
