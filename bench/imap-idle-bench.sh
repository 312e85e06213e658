#!/bin/bash
# bench/imap-idle-bench.sh - Postern's imapd and Dovecot side by side on one
# 100,000-message Maildir: N sessions IDLE on the INBOX, one message is
# delivered (Postern: over SMTP, into its store by queued; Dovecot: with
# dovecot-lda, its own delivery agent), R times; printed are the medians of
# the time until every session has its EXISTS and of the CPU time the IMAP
# processes spent (imapd's master and workers; Dovecot's imap processes,
# one per session), with the ratios (bench/imap_idle_sync.py measures).
#
#   bench/imap-idle-bench.sh [-m MESSAGES] [-s SESSIONS] [-r ROUNDS] [-k]
#
# Postern's store is filled by build/bench/imapstore/fill_store (as queued
# delivers, as the store's owner), then its Maildir is copied to Dovecot
# (bench_dovecot_users) and Dovecot's index is built before the sessions log
# in. Run as root (Dovecot's master starts as root). Owns its temporary
# directory and what it started (bench_cleanup); -k keeps the directory.
set -euo pipefail

MESSAGES=100000
SESSIONS=20
ROUNDS=5
KEEP=0
while getopts "m:s:r:k" opt; do
	case $opt in
	m) MESSAGES=$OPTARG ;;
	s) SESSIONS=$OPTARG ;;
	r) ROUNDS=$OPTARG ;;
	k) KEEP=1 ;;
	*)
		echo "usage: $0 [-m MESSAGES] [-s SESSIONS] [-r ROUNDS] [-k]" >&2
		exit 2
		;;
	esac
done
. "$(dirname "$0")/lib/common.sh"
bench_init
FILL="$ROOT/$BUILD/bench/imapstore/fill_store"
LDA=/usr/lib/dovecot/dovecot-lda
USER_ADDR=big@example.test
read -r P_SMTP P_SUB P_SUBS P_POP P_POPS P_IMAP P_IMAPS D_IMAP < <(bench_ports 8)
DV="$W/dovecot"
DV_RUN="$DV/run"
PD="$W/postern"
trap bench_cleanup EXIT

bench_postern_config "$PD" "$P_SMTP" "$P_SUB" "$P_SUBS" "$P_POP" "$P_POPS" "$P_IMAP" "$P_IMAPS"
bench_postern_start "$PD"
bench_postern_user "$PD" "$USER_ADDR" sha512
MAIL="$PD/var/mail/example.test"
echo "filling $USER_ADDR's INBOX with $MESSAGES messages..." >&2
setpriv --reuid "$(stat -c %u "$PD/var/mail")" --regid "$(stat -c %g "$PD/var/mail")" --clear-groups \
	sh -c 'umask 007; exec "$0" "$1" "$2"' "$FILL" "$MAIL/big" "$MESSAGES" >&2

bench_dovecot_users "$DV" "$PD" "$MAIL/big"
{
	bench_dovecot_conf "$DV" postern-imap-idle-bench imap
	cat <<EOF
postmaster_address = postmaster@example.test
mail_max_userip_connections = $((SESSIONS + 10))
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $D_IMAP
  }
  inet_listener imaps {
    port = 0
  }
}
EOF
} >"$DV/dovecot.conf"
bench_dovecot_start "$DV" "$D_IMAP"
echo "building Dovecot's index..." >&2
doveadm -c "$DV/dovecot.conf" index -u "$USER_ADDR" INBOX

echo "machine: $(nproc) cores, $(uname -sr); Dovecot $(dovecot --version | cut -d' ' -f1);" \
	"Postern $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "mailbox: $MESSAGES messages; $SESSIONS sessions IDLE; $ROUNDS deliveries"
"$PY" "$ROOT/bench/imap_idle_sync.py" --user "$USER_ADDR" --password bench-password \
	--sessions "$SESSIONS" --rounds "$ROUNDS" --markdown "$W/result.md" \
	--system "postern:$P_IMAP:smtp:$P_SMTP:m=\$(pgrep -P $POSTERN_PID -x imapd); echo \$m \$(pgrep -P \$m)" \
	--system "dovecot:$D_IMAP:$LDA -c $DV/dovecot.conf -d $USER_ADDR -f sender@client.test:pgrep -P $(cat "$DV_RUN/master.pid") -x imap"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
