#!/bin/bash
# queue-bench.sh - `postern queue` on a queue of 100,000 messages, beside
# Postfix's postqueue/mailq, qshape and postcat on a Postfix queue of the
# same size, in the same run.
#
#   bench/queue-bench.sh [-n MESSAGES] [-d DOMAINS] [-r ROUNDS] [-l LENGTH] [-k]
#
# Run as root. Uses the Postfix and Postern set-up of bench/lib/common.sh
# (the same as smtp-bench.sh), then:
#   - Postfix: relayhost = [127.0.0.1]:9 and defer_transports = smtp, so
#     every message for a remote domain goes to the deferred queue without
#     a delivery attempt, and no retry for 4 hours (queue_run_delay,
#     minimal_backoff_time); filled by smtp-source with MESSAGES/DOMAINS
#     messages to u@d0.test ... u@dN.test (relayed from mynetworks);
#   - Postern: the domains d0.test ... as local domains with a user u each,
#     delivery paused (`postern queue pause`), filled by smtp-source on the
#     MX port the same way, so every message waits in the queue database;
# both filled through their real SMTP and queue paths at the same time.
# Then bench/queue_bench.py times the commands in interleaved rounds and
# prints the ratios. -k keeps the temporary directory. Defaults: -n 100000
# -d 10 -r 3 -l 1024.
set -euo pipefail

MESSAGES=100000
DOMAINS=10
ROUNDS=3
LENGTH=1024
KEEP=0
ONLY=""
while getopts "n:d:r:l:k" opt; do
	case $opt in
	n) MESSAGES=$OPTARG ;;
	d) DOMAINS=$OPTARG ;;
	r) ROUNDS=$OPTARG ;;
	l) LENGTH=$OPTARG ;;
	k) KEEP=1 ;;
	*)
		echo "usage: $0 [-n MESSAGES] [-d DOMAINS] [-r ROUNDS] [-l LENGTH] [-k]" >&2
		exit 2
		;;
	esac
done
. "$(dirname "$0")/lib/common.sh"
bench_init
read -r P_SMTP P_SUB P_SUBS P_POP P_POPS P_IMAP P_IMAPS PF_SMTP < <(bench_ports 8)
bench_cgroups
trap bench_cleanup EXIT
PER=$((MESSAGES / DOMAINS))
MESSAGES=$((PER * DOMAINS))

# ---- Postfix: everything for remote domains waits in deferred/ ----
PF="$W/postfix"
bench_postfix_config "$PF" "$PF_SMTP"
# No retries during the run (Postern's side is paused): the queue stays as it was filled.
cat >>"$PF/etc/main.cf" <<EOF
relayhost = [127.0.0.1]:9
defer_transports = smtp
queue_run_delay = 4h
minimal_backoff_time = 4h
maximal_backoff_time = 8h
EOF
bench_postfix_start "$PF"

# ---- Postern: local domains, delivery paused ----
PD="$W/postern"
bench_postern_config "$PD" "$P_SMTP" "$P_SUB" "$P_SUBS" "$P_POP" "$P_POPS" "$P_IMAP" "$P_IMAPS"
bench_postern_start "$PD"
PT="$POSTERN -c $PD/postern.conf"
for i in $(seq 0 $((DOMAINS - 1))); do
	$PT domain add "d$i.test" >/dev/null
	echo "bench-password" | $PT user add "u@d$i.test" --password-stdin >/dev/null
done
$PT queue pause

bench_machine
echo "queue: $MESSAGES messages ($DOMAINS domains x $PER, $LENGTH bytes of body), filled with" \
	"smtp-source -s 20 -l $LENGTH -m $PER -f sender@example.test -t u@dI.test 127.0.0.1:PORT"
fill() {
	local port=$1
	for i in $(seq 0 $((DOMAINS - 1))); do
		smtp-source -s 20 -l "$LENGTH" -m "$PER" -f sender@example.test -t "u@d$i.test" "127.0.0.1:$port"
	done
}
t0=$(date +%s)
fill "$P_SMTP" &
FILL_PT=$!
fill "$PF_SMTP" &
FILL_PF=$!
wait "$FILL_PT"
wait "$FILL_PF"
echo "smtp-source done after $(($(date +%s) - t0)) s; waiting for both queues to hold every message" >&2

pf_deferred() { find "$PF/spool/deferred" -type f | wc -l; }
pt_queued() {
	$PT --json queue summary | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["total"]["messages"])'
}
for _ in $(seq 1800); do
	a=$(pf_deferred)
	b=$(pt_queued)
	[ "$a" -ge "$MESSAGES" ] && [ "$b" -ge "$MESSAGES" ] && break
	sleep 1
done
echo "filled after $(($(date +%s) - t0)) s: postfix deferred=$(pf_deferred) postern queued=$(pt_queued)"
[ "$(pf_deferred)" -ge "$MESSAGES" ] && [ "$(pt_queued)" -ge "$MESSAGES" ] || {
	echo "the queues did not fill" >&2
	exit 1
}

PT_QID=$($PT --json queue list --to d0.test | "$PY" -c 'import json, sys; print(json.load(sys.stdin)[0]["id"])')
PF_QID=$(postqueue -c "$PF/etc" -j | head -n 1 | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["queue_id"])')
echo "commands timed: $PT queue ... / postqueue, qshape, postcat -c $PF/etc ..."
"$PY" "$ROOT/bench/queue_bench.py" --rounds "$ROUNDS" --postern "$PT" --postfix-etc "$PF/etc" \
	--domain d3.test --postern-qid "$PT_QID" --postfix-qid "$PF_QID" --smtp-port "$P_SMTP" \
	--probe-rcpt u@d0.test --postfix-smtp-port "$PF_SMTP" --postfix-probe-rcpt u@d0.test \
	--markdown "$W/result.md"
