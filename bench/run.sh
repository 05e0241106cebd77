#!/usr/bin/env bash
# bench/run.sh: run every benchmark beside its raw baseline COUNT times
# (default 6), with the C ping-pong floor of this machine in every round,
# then print the medians, the ratio ours/baseline, and the condition the
# C floor says the machine was in ("quiet" or "loaded"). Needs root
# (workers run as uid 1234).
#
#   bash bench/run.sh            # full run, a few minutes
#   COUNT=10 BENCHTIME=50000x bash bench/run.sh
#
# benchstat is used for the detailed table when it is on PATH
# (go install golang.org/x/perf/cmd/benchstat@latest).
set -euo pipefail
cd "$(dirname "$0")/.."
count=${COUNT:-6}
# Round trips per run. Short runs mostly measure how fast both sides warm
# up (threads, the machine's idle states): 20000 is a few seconds.
benchtime=${BENCHTIME:-20000x}
# A C floor per round trip under this many ns means a quiet machine. Quiet,
# the floor of this kind of machine (2 cores) has read 8-17 us, and 26-31 us
# on 2026-12-01 (load average 0.2, no steal time: the same kind of machine
# is not always as fast); beside four busy processes 55-150 us. 40 us is
# clear of both, and a floor above it means some other job took the CPUs
# for part of the round. The CPU pressure the kernel reports for the run
# (/proc/pressure/cpu: the share of the time some task waited for a CPU)
# is printed beside it, as a second witness.
quiet_ns=${QUIET_NS:-40000}
out=$(mktemp)
floor=
trap 'rm -f "$out" "$floor"' EXIT

if command -v gcc >/dev/null 2>&1; then
	floor=$(mktemp)
	# A gcc run from a path other than its own (a bin directory bound over
	# another, as ../shared/tools/fresh-machine.sh does) looks for cc1 and
	# its linker plugin beside that path and fails: then try the usual
	# install prefixes, and keep the one that works for go test's cgo and
	# external links too.
	if ! gcc -O2 -o "$floor" bench/pingpong.c 2>/dev/null; then
		built=
		for p in /usr/lib/gcc/ /usr/libexec/gcc/; do
			if [ -d "$p" ] && GCC_EXEC_PREFIX=$p gcc -O2 -o "$floor" bench/pingpong.c; then
				export GCC_EXEC_PREFIX=$p
				built=1
				break
			fi
		done
		[ -n "$built" ] || { echo "gcc cannot build bench/pingpong.c" >&2; exit 1; }
	fi
else
	echo "gcc not found: no C floor, and no condition"
fi

# One run of everything at a time, COUNT times over, the C floor among
# them: each benchmark, its baseline and the floor run minutes apart at
# most, so that the machine's drift (other jobs, CPU idle states) weighs on
# all alike, and the floor tells what the machine was doing meanwhile.
# cpu_waited: the microseconds some task waited for a CPU since boot
# (PSI), or nothing without /proc/pressure (kernels before 4.20, or psi=0).
cpu_waited() { sed -n 's/^some .*total=\([0-9]*\)$/\1/p' /proc/pressure/cpu 2>/dev/null || true; }
psi0=$(cpu_waited)
t0=$(date +%s%N)
for i in $(seq "$count"); do
	echo "# round $i of $count"
	if [ -n "$floor" ]; then "$floor" 100000 | tee -a "$out"; fi
	go test -run '^$' -bench '^Benchmark(Accept|AcceptAttest|Attest)$' -benchmem -count 1 . | tee -a "$out"
	go test -run '^$' -bench '^Benchmark(Call|Open|Throughput)$' -benchtime "$benchtime" -benchmem -count 1 ./privsep/ | tee -a "$out"
	go test -run '^$' -bench '^BenchmarkBrokerOpen$' -benchtime "$benchtime" -count 1 ./privsep/ | tee -a "$out"
	go test -run '^$' -bench '^BenchmarkSpawn$' -benchtime 200x -benchmem -count 1 ./privsep/ | tee -a "$out"
	if [ -n "$floor" ]; then "$floor" 100000 | tee -a "$out"; fi
done
psi1=$(cpu_waited)
t1=$(date +%s%N)
go test -run '^TestIdleWorkerMemory$' -v -count 1 ./privsep/ | grep 'per idle worker' || true

if command -v benchstat >/dev/null 2>&1; then
	echo
	benchstat "$out"
fi

echo
echo "medians over $count runs (ns/op; allocs/op in this process; worker-allocs/op in the worker):"
awk '
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	for (i = 3; i < NF; i++) {
		if ($(i+1) == "ns/op") ns[name] = ns[name] " " $i
		if ($(i+1) == "allocs/op") al[name] = $i
		if ($(i+1) == "worker-allocs/op") wa[name] = $i
	}
	# The pair sub-benchmarks (internal/benchpair) time both sides in
	# one loop, alternately, and report each side (NAME-p50-ns: ours, and
	# raw-p50-ns or exec-p50-ns: the baseline) and the ratio of their
	# medians (ratio) and of their means (mean-ratio).
	if (name ~ /\/pair$/) {
		g = name; sub(/^Benchmark/, "", g); sub(/\/pair$/, "", g)
		for (i = 3; i < NF; i++) {
			u = $(i+1)
			if (u == "ratio") pr[g] = pr[g] " " $i
			else if (u == "mean-ratio") pm[g] = pm[g] " " $i
			else if (u == "raw-p50-ns" || u == "exec-p50-ns") pb[g] = pb[g] " " $i
			else if (u ~ /-p50-ns$/) po[g] = po[g] " " $i
		}
	}
}
function range_(s,   a, n, i, lo, hi) {
	n = split(s, a, " "); lo = hi = a[1]
	for (i = 2; i <= n; i++) { if (a[i] + 0 < lo + 0) lo = a[i]; if (a[i] + 0 > hi + 0) hi = a[i] }
	return lo "-" hi
}
function median(s,   a, n, i, j, t) {
	n = split(s, a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
END {
	if ("BenchmarkPingPongC" in ns) {
		n = split(ns["BenchmarkPingPongC"], f, " ")
		for (i = 1; i <= n; i++) if (f[i] + 0 < quiet) q++
		mf = median(ns["BenchmarkPingPongC"])
		cond = mf < quiet ? "quiet" : "loaded"
		agree = mf < quiet ? q : n - q
		printf "C floor: median %.0f ns per round trip over %d runs, %d of them under %d ns\n", mf, n, q, quiet
		printf "condition: %s\n", cond
		if (agree * 4 < n * 3) print "(a quarter of the floor runs or more disagree: the machine changed during the run, and the ratios mix both conditions; run again)"
		print ""
	}
	split("Accept Call Open Throughput BrokerOpen Spawn", groups, " ")
	split("peercred privsep privsep privsep broker privsep", ours, " ")
	split("raw raw raw raw raw exec", base, " ")
	printf "%-12s %14s %14s %8s %10s %10s\n", "benchmark", "ours ns/op", "base ns/op", "ratio", "allocs", "w-allocs"
	for (g = 1; g <= 6; g++) {
		o = "Benchmark" groups[g] "/" ours[g]; b = "Benchmark" groups[g] "/" base[g]
		if (!(o in ns) || !(b in ns)) continue
		mo = median(ns[o]); mb = median(ns[b])
		r = mo / mb
		if (groups[g] == "Throughput") r = mb / mo  # calls/s, ours over baseline
		# Accept and Spawn, one-off operations: their pair (BENCHMARKS.md)
		if ((groups[g] == "Accept" || groups[g] == "Spawn") && pr[groups[g]] != "") {
			k = groups[g]; mo = median(po[k]); mb = median(pb[k]); r = median(pr[k])
		}
		printf "%-12s %14.0f %14.0f %8.2f %10s %10s\n", groups[g], mo, mb, r, al[o] "/" al[b], wa[o]
		if (groups[g] == "Call" && mf > 0) { cf = mo / mf; moc = mo }
	}
	if (cf > 0) printf "%-12s %14.0f %14.0f %8.2f\n", "Call/C", moc, mf, cf
	printf "\ninterleaved (medians: Accept and Spawn one by one, Call, Open and Throughput in blocks):\n"
	printf "%-12s %14s %14s %8s %16s\n", "benchmark", "ours p50 ns", "base p50 ns", "ratio", "mean-ratio"
	split("Accept Spawn Call Open Throughput", pg, " ")
	for (g = 1; g <= 5; g++) {
		k = pg[g]
		if (!(k in pr)) continue
		if (k == "Throughput") {
			# calls/s, ours over baseline: the inverse of each ratio
			split(range_(pm[k]), lh, "-")
			printf "%-12s %14.0f %14.0f %8.2f %6.2f (%.2f-%.2f)\n", k, median(po[k]), median(pb[k]), 1 / median(pr[k]), 1 / median(pm[k]), 1 / lh[2], 1 / lh[1]
			continue
		}
		printf "%-12s %14.0f %14.0f %8.2f %6.2f (%s)\n", k, median(po[k]), median(pb[k]), median(pr[k]), median(pm[k]), range_(pm[k])
	}
	print ""
	# Attestation (issue 17): accept through an attesting Authorizer
	# against Accept with credentials, then against raw accept; one
	# Cred.Attest against one Accept with credentials; with the hash.
	ap = "BenchmarkAccept/peercred"; ar = "BenchmarkAccept/raw"
	if ("BenchmarkAcceptAttest" in ns && ap in ns && ar in ns) {
		ma = median(ns["BenchmarkAcceptAttest"]); mp = median(ns[ap]); mr = median(ns[ar])
		printf "%-12s %14.0f %14.0f %8.2f %10s %10s\n", "AcceptAttest", ma, mp, ma / mp, al["BenchmarkAcceptAttest"] "/" al[ap], ""
		printf "%-12s %14.0f %14.0f %8.2f %10s %10s\n", "  vs raw", ma, mr, ma / mr, al["BenchmarkAcceptAttest"] "/" al[ar], ""
		if ("BenchmarkAttest/cred" in ns) {
			mc = median(ns["BenchmarkAttest/cred"])
			printf "%-12s %14.0f %14.0f %8.2f %10s %10s\n", "Attest", mc, mp, mc / mp, al["BenchmarkAttest/cred"] "/" al[ap], ""
		}
	}
	if ("BenchmarkAttest/hash" in ns)
		printf "%-12s %14.0f %14s %8s %10s %10s\n", "Attest+hash", median(ns["BenchmarkAttest/hash"]), "-", "-", al["BenchmarkAttest/hash"], ""
}' quiet="$quiet_ns" "$out"
echo "(Accept's and Spawn's rows are their interleaved ones: the median of each side,"
echo "timed alternately in one loop, and the median of the rounds' ratios of them; the"
echo "means carry the kernel's preemptions wherever they land when the machine is"
echo "loaded. Call's and Open's pairs, blocks of 256 calls in two workers taking"
echo "turns, and Throughput's, blocks of 1024 calls in each of eight workers, are a"
echo "second reading, not their rows (BENCHMARKS.md, \"The raw baselines yield\")."
echo "Throughput's ratio is calls/s ours over baseline: higher is better. Call/C is"
echo "Call over the C floor's median. AcceptAttest's baseline is Accept/peercred's"
echo "mean, then (vs raw) Accept/raw's; Attest's, Accept/peercred's: one attestation"
echo "against one accept; Attest+hash hashes the test binary, so it depends on its"
echo "size.)"
if [ -n "$psi0" ] && [ -n "$psi1" ]; then
	echo "CPU pressure over the rounds: some task waited for a CPU $(( (psi1 - psi0) * 100000 / (t1 - t0) ))% of the time (/proc/pressure/cpu; quiet: a few %, four busy processes on two CPUs: over 50%)"
fi
