#!/bin/sh
# install-deps.sh - install the Debian 12 packages Postern needs, only those missing.
#
#   scripts/install-deps.sh build   what building needs (scripts/run-dev.sh)
#   scripts/install-deps.sh test    building + unit, integration and fuzz tests (tests/run-all.sh)
#   scripts/install-deps.sh bench   Postfix for bench/smtp-bench.sh (never configured as a system MTA)
#
# This file is the one list of packages. Runs apt-get non-interactively; as
# an ordinary user it uses sudo, and only when something is missing.
set -eu

BUILD_PKGS="meson ninja-build pkg-config gcc libuv1-dev libssl-dev libsqlite3-dev libc-ares-dev libinih-dev
libcrypt-dev openssl zlib1g-dev"
# clang + its runtime for the libFuzzer build; swaks (and its TLS module), Python's test
# packages, dnsmasq as a real DNS server, curl; procps/passwd/util-linux for ps, useradd, runuser;
# fetchmail as a third POP3 client; isync (mbsync) as a real IMAP sync client.
TEST_PKGS="$BUILD_PKGS clang libclang-rt-14-dev libcmocka-dev sqlite3 swaks libnet-ssleay-perl python3
python3-pytest python3-dnslib python3-aiosmtpd dnsmasq-base curl procps passwd util-linux
fetchmail isync"
# Postfix for bench/smtp-bench.sh, Dovecot's pop3d and imapd for bench/pop3-bench.sh and bench/imap-bench.sh
# (neither runs as a system service).
BENCH_PKGS="postfix dovecot-pop3d dovecot-imapd"

what=${1:-test}
case "$what" in
build) pkgs=$BUILD_PKGS ;;
test) pkgs=$TEST_PKGS ;;
bench) pkgs=$BENCH_PKGS ;;
*)
	echo "usage: $0 [build|test|bench]" >&2
	exit 2
	;;
esac

missing=""
for p in $pkgs; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*"install ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
if [ "$(id -u)" = 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "install-deps: missing packages:$missing; run this script as root or install sudo" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if [ "$what" = bench ]; then
	# Postfix installed for the benchmark must not become the system's MTA.
	echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2
# Packages must not start system services (Dovecot would take 110/143/993/995): a policy-rc.d
# that refuses every start is in place during the install unless one already is.
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	policy=/usr/sbin/policy-rc.d
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
fi
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing </dev/null >&2 || {
	[ -n "$policy" ] && $SUDO rm -f "$policy"
	exit 1
}
[ -n "$policy" ] && $SUDO rm -f "$policy"
# Were it started anyway (systemd socket activation), stop and disable the system Dovecot.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	$SUDO systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
fi
