#!/bin/bash
# run-all.sh - build Postern and run every test: the README's test command.
#
#   1. install missing packages (scripts/install-deps.sh test)
#   2. build into build/, run the unit tests and the integration tests
#   3. the same again in an ASan+UBSan build (build-asan/)
#   4. build the libFuzzer targets with clang (build-fuzz/) and run each for
#      FUZZ_SECONDS (default 30) from its seed corpus, one test per target
#   5. as root: the integration tests once more as the ordinary user
#      postern-test (created when missing), on a copy of the build it owns
#
# Prints each group's results and ends with one line "N passed, N failed"
# (totals over everything); exits non-zero when anything failed. Needs no
# standard input. Build directories can be moved with POSTERN_BUILD,
# POSTERN_ASAN_BUILD and POSTERN_FUZZ_BUILD; POSTERN_SKIP=normal,asan,fuzz,user
# leaves groups out (for quick local runs; CI runs everything).
set -u
exec </dev/null

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
PY=/usr/bin/python3
BUILD=${POSTERN_BUILD:-build}
ASAN=${POSTERN_ASAN_BUILD:-build-asan}
FUZZ=${POSTERN_FUZZ_BUILD:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
SKIP=",${POSTERN_SKIP:-},"
# An integration run that hangs must still end: a bound well above its normal time.
PYTEST_LIMIT=${PYTEST_LIMIT:-1500}

OUT=$(mktemp -d /tmp/postern-run-all.XXXXXX)
chmod 1777 "$OUT"   # the ordinary-user run writes its results here too
TOTAL_PASS=0
TOTAL_FAIL=0
TOTAL_SKIP=0
SUMMARY=""
START=$(date +%s)

# group NAME PASSED FAILED SKIPPED [NOTE]: print and add to the totals.
group() {
	local line="$1: $2 passed, $3 failed, $4 skipped${5:+ ($5)}"
	echo "=== $line"
	SUMMARY="$SUMMARY$line"$'\n'
	TOTAL_PASS=$((TOTAL_PASS + $2))
	TOTAL_FAIL=$((TOTAL_FAIL + $3))
	TOTAL_SKIP=$((TOTAL_SKIP + $4))
}

finish() {
	rm -rf "$OUT"
	echo
	echo "=== summary ($(($(date +%s) - START)) s)"
	printf '%s' "$SUMMARY"
	echo "skipped: $TOTAL_SKIP"
	echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
	[ "$TOTAL_FAIL" -eq 0 ]
	exit $?
}

skipped() { case "$SKIP" in *",$1,"*) return 0 ;; esac; return 1; }

# build DIR NAME [meson setup options...]: configure when needed, then ninja
# (only the targets that the function named by $TARGETS prints, when set).
build() {
	local dir=$1 name=$2
	shift 2
	echo "=== build $name ($dir)"
	if [ ! -f "$dir/build.ninja" ]; then
		if ! meson setup "$dir" "$@" >"$OUT/setup-$name.log" 2>&1; then
			tail -n 40 "$OUT/setup-$name.log"
			group "build $name" 0 1 0 "meson setup failed"
			return 1
		fi
	fi
	local targets=()
	if [ -n "${TARGETS:-}" ]; then
		mapfile -t targets < <("$TARGETS" "$dir")
	fi
	# shellcheck disable=SC2086
	if ! ninja -C "$dir" "${targets[@]}" >"$OUT/build-$name.log" 2>&1; then
		grep -E 'error|FAILED|undefined' "$OUT/build-$name.log" | head -n 40
		group "build $name" 0 1 0 "compile failed"
		return 1
	fi
	return 0
}

# fuzz_targets DIR: the fuzz_* executables of build DIR, as ninja targets.
# shellcheck disable=SC2317  # called through $TARGETS
fuzz_targets() {
	meson introspect --targets "$1" | "$PY" -c '
import json, os, sys
for t in json.load(sys.stdin):
    if t["name"].startswith("fuzz_"):
        print(os.path.relpath(t["filename"][0], sys.argv[1]))' "$(cd "$1" && pwd)"
}

# unit DIR NAME: meson's unit suite, counted from its test log.
unit() {
	local dir=$1 name=$2
	echo "=== unit tests ($name)"
	rm -f "$dir/meson-logs/testlog.json"
	meson test -C "$dir" --suite unit --print-errorlogs --no-rebuild 2>&1 | tail -n 200
	if [ ! -f "$dir/meson-logs/testlog.json" ]; then
		group "unit ($name)" 0 1 0 "meson test wrote no log"
		return
	fi
	# shellcheck disable=SC2046
	group "unit ($name)" $("$PY" - "$dir/meson-logs/testlog.json" <<'EOF'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line).get("result", "")
    if r in ("OK", "EXPECTEDFAIL"):
        p += 1
    elif r == "SKIP":
        s += 1
    else:
        f += 1
print(p, f, s)
EOF
)
}

# junit FILE: "passed failed skipped" from pytest's JUnit XML.
junit() {
	"$PY" - "$1" <<'EOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print(0, 1, 0)
    sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
t = f = s = 0
for su in suites:
    t += int(su.get("tests", 0))
    f += int(su.get("failures", 0)) + int(su.get("errors", 0))
    s += int(su.get("skipped", 0))
print(max(t - f - s, 0), f, s)
EOF
}

# integration NAME BUILDDIR [runuser-prefix...]: pytest over tests/integration.
integration() {
	local name=$1 bdir=$2 tdir=$3
	shift 3
	local xml="$OUT/junit-$name.xml"
	echo "=== integration tests ($name)"
	rm -f "$xml"
	timeout -k 30 "$PYTEST_LIMIT" "$@" env POSTERN_BUILD="$bdir" PYTHONDONTWRITEBYTECODE=1 \
		"$PY" -m pytest "$tdir" -p no:cacheprovider -q -rfEs --junitxml="$xml" 2>&1 | tail -n 400
	local rc=${PIPESTATUS[0]}
	if [ ! -s "$xml" ]; then
		group "integration ($name)" 0 1 0 "pytest exited $rc without results"
		return
	fi
	# shellcheck disable=SC2046
	set -- $(junit "$xml")
	local note=""
	if [ "$rc" -ne 0 ] && [ "$2" -eq 0 ] && [ "$rc" -ne 5 ]; then
		note="pytest exited $rc"
		set -- "$1" 1 "$3"
	fi
	group "integration ($name)" "$1" "$2" "$3" "$note"
}

# 1. packages
if ! ./scripts/install-deps.sh test; then
	group "install-deps" 0 1 0
	finish
fi

unset ASAN_OPTIONS UBSAN_OPTIONS

# 2. the normal build
if ! skipped normal && build "$BUILD" normal; then
	unit "$BUILD" normal
	integration normal "$ROOT/$BUILD" "$ROOT/tests/integration"
fi

# 3. ASan + UBSan
if ! skipped asan; then
	if build "$ASAN" asan -Db_sanitize=address,undefined; then
		export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
		export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
		unit "$ASAN" asan
		integration asan "$ROOT/$ASAN" "$ROOT/tests/integration"
		unset ASAN_OPTIONS UBSAN_OPTIONS
	fi
fi

# 4. libFuzzer targets
if ! skipped fuzz; then
	export CC=clang
	# Only the fuzz targets: the daemons are built and tested above.
	TARGETS=fuzz_targets
	if build "$FUZZ" fuzz -Dfuzz=true -Dtests=false -Dwerror=false -Db_sanitize=address,undefined \
		-Dc_args=-fsanitize=fuzzer-no-link; then
		echo "=== fuzz targets (${FUZZ_SECONDS}s each)"
		fp=0
		ff=0
		while IFS= read -r exe; do
			name=$(basename "$exe")
			name=${name#fuzz_}
			work="$OUT/fuzz-$name"
			mkdir -p "$work/corpus"
			if [ -d "tests/fuzz/corpus/$name" ]; then
				cp -r "tests/fuzz/corpus/$name/." "$work/corpus/"
			fi
			if timeout -k 10 $((FUZZ_SECONDS + 120)) "$exe" -max_total_time="$FUZZ_SECONDS" -timeout=10 \
				-rss_limit_mb=2048 -artifact_prefix="$work/" "$work/corpus" >"$work/log" 2>&1; then
				echo "fuzz_$name: ok ($(find "$work/corpus" -type f | wc -l) inputs in corpus)"
				fp=$((fp + 1))
			else
				echo "fuzz_$name: FAILED"
				tail -n 40 "$work/log"
				mkdir -p "tests/fuzz/corpus-run/$name"
				for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
					[ -f "$a" ] || continue
					cp "$a" "tests/fuzz/corpus-run/$name/"
					echo "  input kept: tests/fuzz/corpus-run/$name/$(basename "$a")"
				done
				ff=$((ff + 1))
			fi
		done < <(find "$FUZZ" -type f -name 'fuzz_*' -perm -u+x | sort)
		group "fuzz" "$fp" "$ff" 0 "$((fp + ff)) targets"
	fi
	unset CC TARGETS
fi

# 5. as an ordinary user
if ! skipped user && [ "$(id -u)" = 0 ] && [ -x "$BUILD/postern/postern" ]; then
	if ! id postern-test >/dev/null 2>&1; then
		useradd --system --no-create-home --shell /usr/sbin/nologin postern-test
	fi
	copy=$(mktemp -d /tmp/postern-usertest.XXXXXX)
	mkdir -p "$copy/tests"
	cp -a "$BUILD" "$copy/build"
	cp -a tests/integration "$copy/tests/integration"
	cp -a tests/data "$copy/tests/data"   # the MIME corpus test_mime_cache.py compares with
	cp -a etc "$copy/etc"
	mkdir -p "$copy/libmailcore/util"
	cp libmailcore/util/config.c "$copy/libmailcore/util/"
	find "$copy/tests" -name __pycache__ -prune -exec rm -rf {} +
	chown -R postern-test: "$copy"
	chmod 755 "$copy"
	integration user "$copy/build" "$copy/tests/integration" runuser -u postern-test --
	rm -rf "$copy"
fi

finish
