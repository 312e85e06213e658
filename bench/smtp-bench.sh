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
if [ "$(id -u)" != 0 ]; then
	echo "smtp-bench.sh: run as root (Postfix's master must start as root)" >&2
	exit 1
fi

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${POSTERN_BUILD:-build}
PY=/usr/bin/python3

./scripts/install-deps.sh build >&2
./scripts/install-deps.sh bench >&2
if [ "$ONLY" != postfix ]; then
	[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >&2
	ninja -C "$BUILD" >&2
fi
POSTERN="$ROOT/$BUILD/postern/postern"

W=$(mktemp -d /var/tmp/postern-bench.XXXXXX)
chmod 755 "$W"
read -r P_SMTP P_SUB P_SUBS P_POP P_POPS P_IMAP P_IMAPS PF_SMTP < <("$PY" -c '
import socket
ss = [socket.socket() for _ in range(8)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')

# ---- cgroups, one per system, for CPU accounting ----
CPU_KIND=procstat
CG_BASE=""
v2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
v1=$(awk '$3 == "cgroup" && $4 ~ /(^|,)cpuacct(,|$)/ { print $2; exit }' /proc/mounts)
if [ -n "$v2" ] && mkdir "$v2/postern-bench-$$" 2>/dev/null; then
	CPU_KIND=v2
	CG_BASE="$v2/postern-bench-$$"
elif [ -n "$v1" ] && mkdir "$v1/postern-bench-$$" 2>/dev/null; then
	CPU_KIND=v1
	CG_BASE="$v1/postern-bench-$$"
fi
CG_POSTERN=/nonexistent
CG_POSTFIX=/nonexistent
if [ -n "$CG_BASE" ]; then
	CG_POSTERN="$CG_BASE/postern"
	CG_POSTFIX="$CG_BASE/postfix"
	mkdir "$CG_POSTERN" "$CG_POSTFIX"
fi
# in_cgroup DIR CMD...: run CMD as a member of cgroup DIR (children follow).
in_cgroup() {
	local cg=$1
	shift
	(
		if [ -d "$cg" ]; then echo "$BASHPID" >"$cg/cgroup.procs"; fi
		exec "$@"
	)
}

PF="$W/postfix"
POSTERN_PID=""
cleanup() {
	set +e
	if [ -f "$PF/spool/pid/master.pid" ]; then postfix -c "$PF/etc" stop >/dev/null 2>&1; fi
	if [ -n "$POSTERN_PID" ]; then
		# SIGINT as Ctrl-C would, then SIGTERM, then SIGKILL, each given 10 s.
		for sig in INT TERM KILL; do
			kill -"$sig" "$POSTERN_PID" 2>/dev/null || break
			for _ in $(seq 100); do
				kill -0 "$POSTERN_PID" 2>/dev/null || break 2
				sleep 0.1
			done
			echo "postern up did not stop on SIG$sig" >&2
		done
		wait "$POSTERN_PID" 2>/dev/null
	fi
	# Wait for the last processes to leave the cgroups, then remove them.
	for _ in $(seq 100); do
		busy=0
		for cg in "$CG_POSTERN" "$CG_POSTFIX"; do
			# (cgroup files report size 0: read them)
			[ -f "$cg/cgroup.procs" ] && [ -n "$(cat "$cg/cgroup.procs")" ] && busy=1
		done
		[ $busy = 0 ] && break
		sleep 0.1
	done
	[ -n "$CG_BASE" ] && rmdir "$CG_POSTERN" "$CG_POSTFIX" "$CG_BASE" 2>/dev/null
	if [ "$KEEP" = 1 ]; then echo "kept $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT

want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }
SYSTEMS=()

# ---- Postfix ----
if want postfix; then
mkdir -p "$PF/etc" "$PF/spool" "$PF/data" "$PF/vmail"
VUID=$(id -u nobody)
VGID=$(id -g nobody)
chown "$VUID:$VGID" "$PF/vmail"
chown postfix "$PF/data"
cat >"$PF/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $PF/spool
data_directory = $PF/data
mail_owner = postfix
myhostname = postfix-bench.example.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
local_recipient_maps =
append_dot_mydomain = no
biff = no
virtual_mailbox_domains = example.test
virtual_mailbox_base = $PF/vmail
virtual_mailbox_maps = texthash:$PF/etc/vmailbox
virtual_uid_maps = static:$VUID
virtual_gid_maps = static:$VGID
virtual_transport = virtual
maillog_file = $PF/postfix.log
EOF
echo "alice@example.test example.test/alice/" >"$PF/etc/vmailbox"
cat >"$PF/etc/master.cf" <<EOF
# service type private unpriv chroot wakeup maxproc command
127.0.0.1:$PF_SMTP inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
lmtp      unix  - - n - - lmtp
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF
if ! postfix -c "$PF/etc" check >&2 || ! in_cgroup "$CG_POSTFIX" postfix -c "$PF/etc" start >&2; then
	tail -n 20 "$PF/postfix.log" >&2
	exit 1
fi
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$PF_SMTP") 2>/dev/null && break
	sleep 0.1
done
SYSTEMS+=(--system "postfix:$PF_SMTP:$PF/vmail/example.test/alice:$CG_POSTFIX")
fi

# ---- Postern ----
PD="$W/postern"
if want postern; then
mkdir -p "$PD"
cat >"$PD/postern.conf" <<EOF
[global]
hostname = postern-bench.example.test
state_dir = ./var
[smtpd]
listen = 127.0.0.1:$P_SMTP
submission = 127.0.0.1:$P_SUB
submissions = 127.0.0.1:$P_SUBS
[resolverd]
; nothing listens there: no lookup leaves the machine
nameservers = 127.0.0.1:9
[pop3d]
listen = 127.0.0.1:$P_POP
listen_tls = 127.0.0.1:$P_POPS
[imapd]
listen = 127.0.0.1:$P_IMAP
listen_tls = 127.0.0.1:$P_IMAPS
EOF
# One subshell that becomes postern (exec), so $! is the supervisor itself.
(
	cd "$PD" || exit 1
	if [ -d "$CG_POSTERN" ]; then echo "$BASHPID" >"$CG_POSTERN/cgroup.procs"; fi
	exec "$POSTERN" -c "$PD/postern.conf" up
) >"$PD/postern.log" 2>&1 &
POSTERN_PID=$!
"$POSTERN" -c "$PD/postern.conf" status --wait 30 >/dev/null
"$POSTERN" -c "$PD/postern.conf" domain add example.test
echo "bench-password" | "$POSTERN" -c "$PD/postern.conf" user add alice@example.test --password-stdin
SYSTEMS=(--system "postern:$P_SMTP:$PD/var/mail/example.test/alice:$CG_POSTERN" "${SYSTEMS[@]}")
fi

# ---- the rounds ----
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)," \
	"$(sed -n 's/^PRETTY_NAME="\(.*\)"/\1/p' /etc/os-release); Postfix $(postconf -d -h mail_version);" \
	"Postern $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
echo "command: smtp-source -s $SESSIONS -l $LENGTH -m $MESSAGES -c -f sender@example.test -t alice@example.test 127.0.0.1:PORT"
echo "CPU accounting: $CPU_KIND${CG_BASE:+ ($CG_BASE)}"
"$PY" "$ROOT/bench/smtp_bench.py" --rounds "$ROUNDS" --messages "$MESSAGES" --sessions "$SESSIONS" \
	--length "$LENGTH" --cpu "$CPU_KIND" "${SYSTEMS[@]}" --markdown "$W/result.md"
