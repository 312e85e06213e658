#!/bin/sh
# run-dev.sh - build Postern and run a development instance in the foreground.
#
# Installs missing build packages, builds with meson into build/, then runs
# `build/postern/postern up` from the repository root with the built-in
# development default: state under ./var, SMTP 2525, submission 2587,
# submissions 2465, POP3 1110/1995, IMAP 1143/1993. Ctrl-C stops it.
# Arguments are passed to `postern up`; set POSTERN_CONF to use a config file.
set -eu

cd "$(dirname "$0")/.."
./scripts/install-deps.sh build

BUILD=${POSTERN_BUILD:-build}
if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" >&2
fi
ninja -C "$BUILD" >&2

if [ -n "${POSTERN_CONF:-}" ]; then
	exec "$BUILD/postern/postern" -c "$POSTERN_CONF" up "$@"
fi
exec "$BUILD/postern/postern" up "$@"
