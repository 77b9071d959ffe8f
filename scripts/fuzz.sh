#!/bin/sh
# Runs every fuzz target of the module, one after another, for FUZZTIME
# each, and prints a table of executions per minute at the end. Targets are
# found with `go test -list`, so a new Fuzz function is picked up without
# editing anything here.
#
#   FUZZTIME   how long each target runs (default 10s; "Nx" for N execs)
#   FUZZFLAGS  extra flags for `go test`, e.g. "-parallel 1" on a shared machine
#   PKGS       packages to search (default ./...)
#   FUZZMATCH  only targets whose "package Target" matches this grep -E pattern
#
# A target fails when it writes a failing input to testdata/fuzz/. Go 1.26's
# coordinator sometimes ends a clean run with "context deadline exceeded"
# and no input (go.dev/issue/75804, fixed in Go 1.27); that is reported as
# a flake, not a failure.
set -u
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
FUZZFLAGS=${FUZZFLAGS:-}
PKGS=${PKGS:-./...}
FUZZMATCH=${FUZZMATCH:-.}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
summary=$tmp/summary
: >"$summary"
failed=0

for pkg in $($GO list $PKGS); do
	# -list prints the matching names, then "ok <pkg>".
	targets=$($GO test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz') || continue
	dir=$($GO list -f '{{.Dir}}' "$pkg")
	for f in $targets; do
		echo "$pkg $f" | grep -Eq "$FUZZMATCH" || continue
		echo "== $pkg $f"
		out=$tmp/out
		corpus=$dir/testdata/fuzz/$f
		ls "$corpus" >"$tmp/before" 2>/dev/null || : >"$tmp/before"
		# shellcheck disable=SC2086 # FUZZFLAGS is a list of flags
		$GO test -run '^$' -fuzz "^$f\$" -fuzztime "$FUZZTIME" $FUZZFLAGS "$pkg" >"$out" 2>&1
		rc=$?
		ls "$corpus" >"$tmp/after" 2>/dev/null || : >"$tmp/after"
		status=ok
		if [ $rc -ne 0 ]; then
			if ! cmp -s "$tmp/before" "$tmp/after" || ! grep -q 'context deadline exceeded' "$out"; then
				status=FAIL
				failed=1
				cat "$out"
			else
				status=flake
				echo "(Go's end-of-fuzztime race, go.dev/issue/75804: no failing input)"
			fi
		fi
		# The last progress line carries the totals:
		# "fuzz: elapsed: 10s, execs: 123 (12/sec), new interesting: ..."
		last=$(grep 'fuzz: elapsed:.*execs:' "$out" | tail -n 1)
		el=$(echo "$last" | sed -n 's/.*elapsed: \([0-9]*\)s.*/\1/p')
		ex=$(echo "$last" | sed -n 's/.*execs: \([0-9]*\).*/\1/p')
		perMin=?
		if [ -n "$el" ] && [ -n "$ex" ] && [ "$el" -gt 0 ]; then
			perMin=$((ex * 60 / el))
		fi
		echo "$last"
		printf '%-11s %-14s %-6s %s %s\n' "$perMin" "${ex:-?}/${el:-?}s" "$status" "$pkg" "$f" >>"$summary"
	done
done

echo
echo "execs/min   execs/elapsed  status package target"
cat "$summary"
exit $failed
