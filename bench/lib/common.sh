# bench/lib/common.sh - what the benchmark scripts share: sourced by
# bench/smtp-bench.sh, bench/queue-bench.sh, bench/pop3-bench.sh and bench/imap-bench.sh (bash,
# set -euo pipefail).
#
#   bench_init                 root check, packages, the build; sets ROOT BUILD POSTERN PY W
#   bench_ports N              N free loopback TCP ports on one line
#   bench_cgroups [OTHER]      one cgroup per system for CPU accounting: CPU_KIND CG_BASE
#                              CG_POSTERN and CG_OTHER (OTHER: postfix, the default, or
#                              dovecot; CG_POSTFIX is CG_OTHER)
#   in_cgroup DIR CMD...       run CMD inside cgroup DIR (children follow)
#   bench_postfix_config DIR PORT
#                              a private Postfix in DIR (own config, queue and data
#                              directories, smtpd on 127.0.0.1:PORT, no chroot,
#                              virtual(8) delivery into Maildir for example.test);
#                              callers may append to DIR/etc/main.cf before starting
#   bench_postfix_start DIR    check and start it (in CG_POSTFIX), wait for its port
#   bench_postern_config DIR SMTP SUB SUBS POP POPS IMAP IMAPS
#                              DIR/postern.conf on those ports, nameservers 127.0.0.1:9;
#                              callers may append sections
#   bench_postern_start DIR    `postern up` (in CG_POSTERN) as POSTERN_PID, wait until it
#                              answers, add example.test and alice@example.test
#   bench_dovecot_users DV PD MAILDIR...
#                              copy Postern's MAILDIRs to DV/mail/example.test/ (owned by
#                              nobody) and write DV/passwd with the very hashes of PD's
#                              directory ({CRYPT}); makes DV/run and DV/state
#   bench_dovecot_conf DV INSTANCE PROTOCOLS
#                              print the first part of a private dovecot.conf (base_dir,
#                              logs, plaintext passwd-file auth, static userdb as nobody,
#                              Maildir); the caller adds limits and service blocks
#   bench_dovecot_start DV PORT
#                              start `dovecot -c DV/dovecot.conf` (in CG_DOVECOT when it is a
#                              cgroup), wait up to 10 s for PORT
#   bench_postern_user DIR ADDRESS HASH
#                              add ADDRESS with the password bench-password, hashed with
#                              Postern's default (yescrypt) or, for HASH sha512, SHA512-CRYPT
#   bench_cleanup              (the EXIT trap) stop what was started (Postfix, Postern, and
#                              a Dovecot whose base_dir is in DV_RUN), empty and remove the cgroups,
#                              remove W unless KEEP=1
#
# Owns the temporary directory W and the processes it started; never
# touches the system's own Postfix configuration.

bench_init() {
	if [ "$(id -u)" != 0 ]; then
		echo "$(basename "$0"): run as root (Postfix's and Dovecot's masters start as root)" >&2
		exit 1
	fi
	cd "$(dirname "$0")/.."
	ROOT=$(pwd)
	BUILD=${POSTERN_BUILD:-build}
	PY=/usr/bin/python3
	./scripts/install-deps.sh build >&2
	./scripts/install-deps.sh bench >&2
	if [ "${ONLY:-}" != postfix ]; then
		[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >&2
		ninja -C "$BUILD" >&2
	fi
	POSTERN="$ROOT/$BUILD/postern/postern"
	W=$(mktemp -d /var/tmp/postern-bench.XXXXXX)
	chmod 755 "$W"
	POSTERN_PID=""
	PF_STARTED=""
	CG_BASE=""
	CG_POSTERN=/nonexistent
	CG_POSTFIX=/nonexistent
	CG_OTHER=/nonexistent
	DV_RUN=""
	KEEP=${KEEP:-0}
}

bench_ports() {
	"$PY" -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])' "$1"
}

bench_cgroups() {
	CPU_KIND=procstat
	local v2 v1
	v2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	v1=$(awk '$3 == "cgroup" && $4 ~ /(^|,)cpuacct(,|$)/ { print $2; exit }' /proc/mounts)
	if [ -n "$v2" ] && mkdir "$v2/postern-bench-$$" 2>/dev/null; then
		CPU_KIND=v2
		CG_BASE="$v2/postern-bench-$$"
	elif [ -n "$v1" ] && mkdir "$v1/postern-bench-$$" 2>/dev/null; then
		CPU_KIND=v1
		CG_BASE="$v1/postern-bench-$$"
	fi
	if [ -n "$CG_BASE" ]; then
		CG_POSTERN="$CG_BASE/postern"
		CG_OTHER="$CG_BASE/${1:-postfix}"
		CG_POSTFIX=$CG_OTHER
		mkdir "$CG_POSTERN" "$CG_OTHER"
	fi
}

in_cgroup() {
	local cg=$1
	shift
	(
		if [ -d "$cg" ]; then echo "$BASHPID" >"$cg/cgroup.procs"; fi
		exec "$@"
	)
}

bench_cleanup() {
	set +e
	if [ -n "$PF_STARTED" ] && [ -f "$PF_STARTED/spool/pid/master.pid" ]; then
		postfix -c "$PF_STARTED/etc" stop >/dev/null 2>&1
	fi
	if [ -n "$DV_RUN" ] && [ -f "$DV_RUN/master.pid" ]; then
		kill -TERM "$(cat "$DV_RUN/master.pid")" 2>/dev/null
		for _ in $(seq 100); do
			[ -f "$DV_RUN/master.pid" ] || break
			sleep 0.1
		done
	fi
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
		for cg in "$CG_POSTERN" "$CG_OTHER"; do
			# (cgroup files report size 0: read them)
			[ -f "$cg/cgroup.procs" ] && [ -n "$(cat "$cg/cgroup.procs")" ] && busy=1
		done
		[ $busy = 0 ] && break
		sleep 0.1
	done
	[ -n "$CG_BASE" ] && rmdir "$CG_POSTERN" "$CG_OTHER" "$CG_BASE" 2>/dev/null
	[ "$KEEP" = 1 ] || bench_fs_undo
	if [ "$KEEP" = 1 ]; then echo "kept $W${FSMOUNTS:+ (file systems:$FSMOUNTS)}" >&2; else rm -rf "$W"; fi
}

# bench_fs DIR JOURNAL: DIR on a file system of its own, a fresh ext4 in a
# sparse image file on a loop device, with its journal (mkfs.ext4's default,
# as a mail server's disk would have it) when JOURNAL is 1, without one (as
# this machine's root, where /var/tmp lies) when 0; unmounted and removed by
# bench_cleanup. Why: ext4 without a journal keeps freed inodes out of reuse
# for minutes, and every file creation in their block group scans past them
# (docs/performance.md, imapd Run 6); on one file system the two servers'
# mail lands in the same block groups, so the messages one server deletes
# slow the files the other creates next.
FSMOUNTS=""
bench_fs() {
	local dir=$1 img kind
	img=$(mktemp /var/tmp/postern-bench-fs.XXXXXX) || return 1
	truncate -s 8G "$img" || { rm -f "$img"; return 1; }
	# Inode tables and journal written now: left to the kernel's ext4lazyinit
	# thread, their zeroing would run under the first minutes of the bench.
	local init=lazy_itable_init=0,lazy_journal_init=0
	if [ "$2" = 1 ]; then
		mkfs.ext4 -q -F -E "$init" "$img"
		kind="with a journal"
	else
		mkfs.ext4 -q -F -E "$init" -O ^has_journal "$img"
		kind="without a journal"
	fi
	mkdir -p "$dir"
	if ! mount -o loop "$img" "$dir"; then
		rm -f "$img"
		return 1
	fi
	chmod 755 "$dir"
	FSMOUNTS="$dir:$img $FSMOUNTS"
	echo "file system: ext4 $kind on a loop device ($img), mounted on $dir" >&2
}

# Unmount and remove every image bench_fs made.
bench_fs_undo() {
	local m
	for m in $FSMOUNTS; do   # the last mounted first: one may lie inside another
		umount "${m%%:*}" 2>/dev/null || umount -l "${m%%:*}"
		rm -f "${m#*:}"
	done
	FSMOUNTS=""
}

bench_postfix_config() {
	local pf=$1 port=$2 vuid vgid
	mkdir -p "$pf/etc" "$pf/spool" "$pf/data" "$pf/vmail"
	vuid=$(id -u nobody)
	vgid=$(id -g nobody)
	chown "$vuid:$vgid" "$pf/vmail"
	chown postfix "$pf/data"
	cat >"$pf/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $pf/spool
data_directory = $pf/data
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
virtual_mailbox_base = $pf/vmail
virtual_mailbox_maps = texthash:$pf/etc/vmailbox
virtual_uid_maps = static:$vuid
virtual_gid_maps = static:$vgid
virtual_transport = virtual
maillog_file = $pf/postfix.log
EOF
	echo "alice@example.test example.test/alice/" >"$pf/etc/vmailbox"
	cat >"$pf/etc/master.cf" <<EOF
# service type private unpriv chroot wakeup maxproc command
127.0.0.1:$port inet n - n - - smtpd
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
	BENCH_PF_PORT=$port
}

bench_postfix_start() {
	local pf=$1
	PF_STARTED=$pf
	if ! postfix -c "$pf/etc" check >&2 || ! in_cgroup "$CG_POSTFIX" postfix -c "$pf/etc" start >&2; then
		tail -n 20 "$pf/postfix.log" >&2
		exit 1
	fi
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$BENCH_PF_PORT") 2>/dev/null && break
		sleep 0.1
	done
}

bench_postern_config() {
	local pd=$1
	mkdir -p "$pd"
	cat >"$pd/postern.conf" <<EOF
[global]
hostname = postern-bench.example.test
state_dir = ./var
[smtpd]
listen = 127.0.0.1:$2
submission = 127.0.0.1:$3
submissions = 127.0.0.1:$4
[resolverd]
; nothing listens there: no lookup leaves the machine
nameservers = 127.0.0.1:9
[pop3d]
listen = 127.0.0.1:$5
listen_tls = 127.0.0.1:$6
[imapd]
listen = 127.0.0.1:$7
listen_tls = 127.0.0.1:$8
EOF
}

bench_postern_start() {
	local pd=$1
	# One subshell that becomes postern (exec), so $! is the supervisor itself.
	(
		cd "$pd" || exit 1
		if [ -d "$CG_POSTERN" ]; then echo "$BASHPID" >"$CG_POSTERN/cgroup.procs"; fi
		exec "$POSTERN" -c "$pd/postern.conf" up
	) >"$pd/postern.log" 2>&1 &
	POSTERN_PID=$!
	"$POSTERN" -c "$pd/postern.conf" status --wait 30 >/dev/null
	"$POSTERN" -c "$pd/postern.conf" domain add example.test
	echo "bench-password" | "$POSTERN" -c "$pd/postern.conf" user add alice@example.test --password-stdin
}

bench_postern_user() {
	local pd=$1 addr=$2 hash=$3
	if [ "$hash" = sha512 ]; then
		"$PY" -W ignore -c 'import crypt; print(crypt.crypt("bench-password", crypt.mksalt(crypt.METHOD_SHA512)))' |
			"$POSTERN" -c "$pd/postern.conf" user add "$addr" --hash-stdin
	else
		echo "bench-password" | "$POSTERN" -c "$pd/postern.conf" user add "$addr" --password-stdin
	fi
}

bench_dovecot_users() {
	local dv=$1 pd=$2 u
	shift 2
	mkdir -p "$dv/run" "$dv/state" "$dv/mail/example.test"
	for u in "$@"; do
		mkdir -p "$dv/mail/example.test/$(basename "$u")"
		cp -a "$u/new" "$u/cur" "$u/tmp" "$dv/mail/example.test/$(basename "$u")/"
	done
	chown -R nobody:nogroup "$dv/mail"
	sqlite3 "$pd/var/directory.sqlite" "SELECT address || ':{CRYPT}' || password FROM users" >"$dv/passwd"
	chmod 644 "$dv/passwd"
}

bench_dovecot_conf() {
	local dv=$1 instance=$2 protocols=$3
	cat <<EOF
base_dir = $dv/run
state_dir = $dv/state
instance_name = $instance
protocols = $protocols
listen = 127.0.0.1
log_path = $dv/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = $dv/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$dv/mail/%d/%n
}
mail_location = maildir:~/
first_valid_uid = 1
EOF
}

bench_dovecot_start() {
	local dv=$1 port=$2
	(
		if [ -d "${CG_DOVECOT:-}" ]; then echo "$BASHPID" >"$CG_DOVECOT/cgroup.procs"; fi
		exec dovecot -c "$dv/dovecot.conf"
	)
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
		sleep 0.1
	done
}

bench_machine() {
	echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)," \
		"$(sed -n 's/^PRETTY_NAME="\(.*\)"/\1/p' /etc/os-release); Postfix $(postconf -d -h mail_version);" \
		"Postern $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
}
