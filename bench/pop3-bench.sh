#!/bin/bash
# pop3-bench.sh - Postern's pop3d against Dovecot's pop3 on this machine, same users, same mail.
#
#   bench/pop3-bench.sh [-r ROUNDS] [-c CLIENTS] [-n LOGINS] [-m MESSAGES] [-H yescrypt|sha512] [-k]
#
# Run as root (Dovecot's master starts as root). Installs dovecot-pop3d when
# missing (with no system Dovecot started: scripts/install-deps.sh), builds
# Postern (build/), then:
#   - starts a Postern instance on free loopback ports with example.test,
#     CLIENTS users bench01..NN (5 small messages each) and
#     download@example.test (MESSAGES messages, 1 KB to 400 KB, most a few
#     KB), all delivered over SMTP by bench/pop3_bench.py fill;
#   - copies those Maildirs for Dovecot and gives Dovecot the users with
#     the very password hashes of Postern's directory (passwd-file,
#     {CRYPT}: the same yescrypt cost on both sides); a private Dovecot
#     (dovecot -c its own config: base_dir, state and logs under the
#     temporary directory, pop3 on one loopback port, Maildir, a static
#     userdb as nobody, its default process-per-connection login service);
#   - runs bench/pop3_bench.py in interleaved rounds: logins/s with CLIENTS
#     concurrent clients (USER, PASS, STAT, QUIT), then a download of the
#     whole MESSAGES-message mailbox (RETR one at a time). Each system runs
#     in its own cgroup when one can be made, for its CPU time.
# Prints the rounds, the medians and the ratios; stops both and removes the
# temporary directory (-k keeps it). Defaults: -r 3 -c 20 -n 2000 -m 2000.
# -H sha512 gives the users SHA512-CRYPT hashes (Dovecot's usual scheme,
# about a tenth of yescrypt's cost) instead of Postern's default yescrypt:
# with yescrypt the hash dominates a login on both sides.
set -euo pipefail

ROUNDS=3
CLIENTS=20
LOGINS=2000
MESSAGES=2000
KEEP=0
HASH=yescrypt
while getopts "r:c:n:m:H:k" opt; do
	case $opt in
	r) ROUNDS=$OPTARG ;;
	c) CLIENTS=$OPTARG ;;
	n) LOGINS=$OPTARG ;;
	m) MESSAGES=$OPTARG ;;
	H) HASH=$OPTARG ;;
	k) KEEP=1 ;;
	*)
		echo "usage: $0 [-r ROUNDS] [-c CLIENTS] [-n LOGINS] [-m MESSAGES] [-H yescrypt|sha512] [-k]" >&2
		exit 2
		;;
	esac
done
. "$(dirname "$0")/lib/common.sh"
bench_init
read -r P_SMTP P_SUB P_SUBS P_POP P_POPS P_IMAP P_IMAPS D_POP < <(bench_ports 8)
bench_cgroups dovecot
CG_DOVECOT=$CG_OTHER
DV="$W/dovecot"
DV_RUN="$DV/run"
PD="$W/postern"
trap bench_cleanup EXIT

# ---- Postern ----
bench_postern_config "$PD" "$P_SMTP" "$P_SUB" "$P_SUBS" "$P_POP" "$P_POPS" "$P_IMAP" "$P_IMAPS"
bench_postern_start "$PD"
for i in $(seq 1 "$CLIENTS") download; do
	u=$([ "$i" = download ] && echo download || printf 'bench%02d' "$i")
	bench_postern_user "$PD" "$u@example.test" "$HASH"
done
echo "filling the mailboxes over SMTP ($MESSAGES + $CLIENTS x 5 messages)..." >&2
"$PY" "$ROOT/bench/pop3_bench.py" fill --port "$P_SMTP" --users "$CLIENTS" --messages "$MESSAGES"
MAIL="$PD/var/mail/example.test"
for _ in $(seq 600); do
	n=$(find "$MAIL/download/new" -type f 2>/dev/null | wc -l)
	[ "$n" -ge "$MESSAGES" ] && break
	sleep 0.1
done

# ---- Dovecot: the same Maildirs, the same hashes ----
bench_dovecot_users "$DV" "$PD" "$MAIL"/*
{
bench_dovecot_conf "$DV" postern-pop3-bench pop3
cat <<EOF2
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $D_POP
  }
  inet_listener pop3s {
    port = 0
  }
}
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = 0
  }
}
EOF2
} >"$DV/dovecot.conf"
bench_dovecot_start "$DV" "$D_POP"

# ---- the rounds ----
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)," \
	"$(sed -n 's/^PRETTY_NAME="\(.*\)"/\1/p' /etc/os-release); Dovecot $(dovecot --version | cut -d' ' -f1);" \
	"Postern $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
echo "password hashes: $HASH (the same hash on both sides)"
echo "mailbox: $MESSAGES messages, $(du -sb "$MAIL/download/new" | cut -f1) bytes on disk; $CLIENTS login users"
echo "CPU accounting: $CPU_KIND${CG_BASE:+ ($CG_BASE)}"
"$PY" "$ROOT/bench/pop3_bench.py" run --rounds "$ROUNDS" --clients "$CLIENTS" --logins "$LOGINS" --cpu "$CPU_KIND" \
	--system "postern:$P_POP:$CG_POSTERN" --system "dovecot:$D_POP:$CG_DOVECOT" --markdown "$W/result.md"
