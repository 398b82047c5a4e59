#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Runs the performance suite and turns it into a table and two charts:
#
#   perf/run.sh BUILD_DIR [batchring-perf flags, e.g. --benchmark_filter=scaling]
#
# `make perf` calls it with the build directory. It writes into perf/results/
# (not tracked by git):
#   perf-<UTC time>.json  Google Benchmark's JSON, every repetition and the
#                         aggregates; latest.json points to the newest
#   summary.tsv           one row per case and parameters, from the medians
#   results.md            the table (every figure beside its baseline from
#                         the same run, the ratio, the target), the command
#                         and the machine
#   scaling.png, efficiency.png   the charts (if gnuplot is installed)
#   peers.dat, peers.md, peers.png   the peers cases (perf/case_peers.c):
#                         batchring (from C and from Python), the trainer's
#                         pread loop and PyTorch's DataLoader side by side
#                         (chart: perf/peers.gp)
# With BR_PERF_PUBLISH=1 it also copies results.md, the charts and the JSON
# to docs/perf/, for the README. BR_PERF_REPETITIONS sets the repetitions
# (default 5): the table shows medians.
set -eu

if [ $# -lt 1 ]; then
    echo "usage: perf/run.sh BUILD_DIR [batchring-perf flags]" >&2
    exit 2
fi
build=$1
shift
perf_dir=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$perf_dir")
exe=$build/perf/batchring-perf
results=$perf_dir/results
reps=${BR_PERF_REPETITIONS:-5}

if [ ! -x "$exe" ]; then
    echo "perf/run.sh: $exe not found: build with -DBR_BUILD_PERF=ON (the default in a top-level build)" >&2
    exit 1
fi
mkdir -p "$results"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
json=$results/perf-$stamp.json

# The floor and the topology first (issue 12): every figure below depends
# on them, so the report carries them beside the results.
BR_PERF_MACHINE=$("$build/cli/batchring" bench --case floor --seconds 0.3 2>/dev/null | sed -n 's/^machine: //p')
export BR_PERF_MACHINE
echo "perf/run.sh: machine: ${BR_PERF_MACHINE:-unknown (batchring bench failed)}" >&2
echo "perf/run.sh: $reps repetitions of every case; a few minutes on a 2-core machine" >&2
start=$(date +%s)
# Repetitions run in a shuffled order across all cases: on a shared machine
# a burst of someone else's work then spoils one repetition of many cases
# instead of every repetition of one, and the medians hold.
"$exe" --benchmark_repetitions="$reps" --benchmark_enable_random_interleaving=true \
    --benchmark_display_aggregates_only=true \
    --benchmark_out="$json" --benchmark_out_format=json "$@"
elapsed=$(($(date +%s) - start))
load_end=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null | tr ' ' ',' || echo unknown)
ln -sf "$(basename "$json")" "$results/latest.json"

# Rows in the order of the cases (a shuffled run reports them shuffled),
# then by workers, batch bytes and ring bytes; the context lines first.
awk -f "$perf_dir/summary.awk" "$json" | awk -F '\t' '
    BEGIN { split("floor handoff efficiency seed scaling startup overlap slow-trainer", order, " ")
            for (i in order) rank[order[i]] = i }
    /^#/ { print "0\t0\t0\t0\t0\t" $0; next }
    { print (($1 in rank) ? rank[$1] : 99) "\t" ($3 == "-" ? 0 : $3) "\t" ($2 == "-" ? 0 : $2) "\t" ($4 == "-" ? 0 : $4) "\t" NR "\t" $0 }' |
    sort -t "$(printf '\t')" -k1,1n -k2,2n -k3,3n -k4,4n -k5,5n | cut -f6- >"$results/summary.tsv"

# Chart data: one file per series.
awk -F '\t' '$1 == "scaling" && $13 != "failed" { print $3, $5, $7, $9 }' "$results/summary.tsv" |
    sort -n >"$results/scaling.dat"
for w in 1 2; do
    awk -F '\t' -v w="$w" '$1 == "efficiency" && $3 == w && $13 != "failed" { print $2, $9, $5, $7 }' \
        "$results/summary.tsv" | sort -n >"$results/efficiency-w$w.dat"
done

# The peers (case_peers.c): one row per order, batches/s of each peer, and
# their table with the trainer's CPU per batch, the floor and the machine.
command="perf/run.sh $build${*:+ $*}"
awk -F '\t' '
function n(v) { return (v ~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/) ? v : "NaN" }
($1 == "peers" || $1 == "peers-seq") && $13 != "failed" {
    split("", v)
    k = split($15, kv, " ")
    for (i = 1; i <= k; i++) { split(kv[i], p, "="); v[p[1]] = p[2] }
    printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ($1 == "peers" ? "shuffled" : "file-order"),
        n($7), n(v["torch_batched_batches_per_s"]), n(v["pread_batches_per_s"]), n($5),
        n(v["torch_cpu_us_per_batch"]), n(v["torch_batched_cpu_us_per_batch"]),
        n(v["pread_cpu_us_per_batch"]), n(v["batchring_cpu_us_per_batch"]), n(v["resident_fraction"]),
        n(v["python_batches_per_s"]), n(v["python_cpu_us_per_batch"]), n(v["python_vs_torch"]),
        n(v["python_vs_batchring"]), n(v["vs_torch_whole_turn"]), n(v["python_vs_torch_whole_turn"])
}' "$results/summary.tsv" | sort -r >"$results/peers.dat"
peers_floor=$(awk -F '\t' '$1 == "floor" && $13 != "failed" { printf "%.0f ns", $5 }' "$results/summary.tsv")
peers_cpus=$(awk -F '\t' '$1 == "#" && $2 == "online_cpus" { c = $3 } $1 == "#" && $2 == "cpu_model" { m = $3 }
    $1 == "#" && $2 == "cpus_allowed" { a = $3 } $1 == "#" && $2 == "br_cpus" { b = $3 }
    END { printf "%s CPUs (%s)%s%s", c, m, (a == "" ? "" : ", allowed " a), (b == "" ? "" : ", BR_CPUS " b) }' "$results/summary.tsv")
peers_machine="floor ${peers_floor:-not measured in this run} (cache line, one way), $peers_cpus"
peers_subtitle="$peers_machine; $command"
rm -f "$results/peers.md"
if [ -s "$results/peers.dat" ]; then
    awk -F '\t' -v command="$command" -v sub_="$peers_subtitle" -v reps="$reps" '
    function f(v, d) { return (v == "NaN") ? "skipped" : sprintf(d, v) }
    BEGIN {
        print "| order | peer | batches/s | MiB/s | trainer CPU per batch | batchring is |"
        print "|---|---|---:|---:|---:|---:|"
    }
    {
        name[1] = "PyTorch DataLoader, a record per `__getitem__`"; col[1] = 2; cpu[1] = 6
        name[2] = "PyTorch DataLoader, batch sampler"; col[2] = 3; cpu[2] = 7
        name[3] = "the trainer'"'"'s own pread loop"; col[3] = 4; cpu[3] = 8
        name[4] = "**batchring** records dataset"; col[4] = 5; cpu[4] = 9
        name[5] = "**batchring** from Python, a torch tensor per batch"; col[5] = 11; cpu[5] = 12
        for (i = 1; i <= 5; i++) {
            b = $(col[i])
            r = (i == 4 || b == "NaN" || b == 0) ? "" : sprintf("%.1fx", $5 / b)
            printf "| %s | %s | %s | %s | %s | %s |\n", $1, name[i], f(b, "%.0f"),
                (b == "NaN") ? "" : sprintf("%.0f", b * 64 * 4096 / 1048576), f($(cpu[i]), "%.1f µs"), r
        }
        res[$1] = $10
        if ($13 != "NaN" && $14 != "NaN")
            py[$1] = sprintf("%s: %.1fx the DataLoader (a record per `__getitem__`; %s), %.2fx the C consumer (%s)", $1, $13,
                ($13 >= 50 ? "met" : "MISS"), $14, ($14 >= 0.5 ? "met" : "MISS"))
        if ($15 != "NaN" || $16 != "NaN")
            whole[$1] = sprintf("%s: C %s, Python %s", $1, f($15, "%.1fx"), f($16, "%.1fx"))
    }
    END {
        print ""
        line = ""
        for (o in py) line = line (line == "" ? "" : "; ") py[o]
        if (line != "")
            printf "batchring from Python (`perf/peers/batchring_py.py`, the `batchring` package: a zero-copy uint8 tensor [64, 4096] of each slot), medians of the per-repetition ratios: %s (targets: >= 50x, >= 0.5x).\n\n", line
        line = ""
        for (o in whole) line = line (line == "" ? "" : "; ") whole[o]
        if (line != "")
            printf "The same ratios to the DataLoader over whole turns, the 100 ms warm-up of each turn counted: %s.\n\n", line
        resident = ""
        for (o in res) resident = resident (resident == "" ? "" : ", ") o " " (res[o] == "NaN" ? "unknown" : sprintf("%.0f%%", res[o] * 100))
        printf "64 x 4 KiB records per batch, 2 workers for batchring and for each DataLoader, one 128 MiB file written just before (its share in the page cache at the end, mincore: %s). Medians of %s repetitions; each repetition runs the peers in turns, each turn 100 ms of untimed batches and then 200 ms timed (case_peers.c: a peer'"'"'s rate climbs for the first 40-80 ms of a turn). Trainer CPU: getrusage of the trainer process (for torch, time.process_time of the main process), never the workers'"'"'. %s.\n", resident, reps, sub_
    }' "$results/peers.dat" >"$results/peers.md"
fi

# The table.
has_peers=0
[ -s "$results/peers.dat" ] && has_peers=1
awk -F '\t' -v reps="$reps" -v command="$command" -v elapsed="$elapsed" -v load_end="$load_end" -v has_peers="$has_peers" '
function human(b,    u, i) {
    if (b == "-") return "-"
    split("B KiB MiB GiB", u, " ")
    for (i = 1; b >= 1024 && i < 4; i++) b /= 1024
    return (b == int(b) ? sprintf("%d", b) : sprintf("%.1f", b)) " " u[i]
}
function num(v) {
    if (v == "-" || v == "") return "-"
    v += 0
    if (v >= 1000 || v <= -1000) return sprintf("%.0f", v)
    if (v >= 100 || v <= -100) return sprintf("%.1f", v)
    if (v >= 1 || v <= -1) return sprintf("%.2f", v)
    return sprintf("%.3f", v)
}
/^#/ { ctx[$2] = $3; next }
{
    row[++n] = $0
    if ($13 == "pass") pass++
    else if ($13 == "MISS") miss++
    else if ($13 == "failed") failed++
}
END {
    print "# batchring performance"
    print ""
    printf "Made with `%s` (what `make perf` runs) on %s in %s s: %s CPUs (%s), %s, ", command, ctx["date"], elapsed, ctx["online_cpus"], ctx["cpu_model"], ctx["kernel"]
    printf "load average %s at the start and %s at the end (this run'"'"'s own processes count); batchring %s. ", ctx["load_avg"], load_end, ctx["batchring_version"]
    printf "Medians of %d repetitions, run in shuffled order. Each figure stands beside its baseline from the same run: ", reps
    print "the baseline does the same work per unit for the same number of units, in chunks interleaved with the subject'"'"'s."
    print ""
    # The floor and the topology: the targets that depend on them are in
    # docs/perf/notes.md ("Which targets depend on the topology").
    floor = "not measured"
    for (i = 1; i <= n; i++) {
        split(row[i], f, "\t")
        if (f[1] == "floor" && f[13] != "failed") floor = num(f[5]) " ns"
    }
    printf "Topology: floor %s per one-way cache-line handoff (the floor case of this run); CPUs this process could use: %s; caches (CPUs sharing each): %s; %s last-level domain(s); BR_CPUS %s (workers %s). Before the run, `batchring bench` said: %s.\n", floor, ctx["cpus_allowed"], ctx["cache_sharing"], ctx["llc_domains"], ctx["br_cpus"], ctx["br_cpus"] == "unset" ? "not pinned" : "pinned by it", ENVIRON["BR_PERF_MACHINE"]
    print ""
    print "| case | batch | ring | workers | result | baseline (same run) | ratio | target | |"
    print "|---|---:|---:|---:|---|---|---:|---|---|"
    for (i = 1; i <= n; i++) {
        split(row[i], f, "\t")
        if (f[13] == "failed") {
            printf "| %s | %s | %s | %s | failed: %s | | | | |\n", f[1], human(f[2]), human(f[4]), f[3], f[15]
            continue
        }
        base = (f[7] == "-") ? "-" : num(f[7]) " " (f[1] == "handoff" ? "ns/handoff " : "") f[8]
        if (f[1] == "efficiency") base = num(f[7]) " GB/s, " f[8]
        if (f[1] == "seed" || f[1] == "overlap" || f[1] == "slow-trainer" || f[1] == "scaling" || f[1] ~ /^peers/) base = num(f[7]) " batches/s, " f[8]
        if (f[1] == "startup") base = num(f[7]) " ms, " f[8]
        target = (f[11] == "-") ? "" : ((f[12] + 0) ? "≥ " : "≤ ") num(f[11])
        verdict = (f[13] == "-") ? "" : (f[13] == "MISS" ? "**miss**" : f[13])
        printf "| %s | %s | %s | %s | %s %s | %s | %s | %s | %s |\n", f[1], human(f[2]), human(f[4]), f[3], num(f[5]), f[6], base, (f[9] == "-" ? "" : num(f[9]) " " f[10]), target, verdict
    }
    print ""
    printf "Targets: %d met, %d missed%s.\n", pass, miss, failed ? sprintf(", %d runs failed", failed) : ""
    print ""
    print "![scaling](scaling.png)"
    print ""
    print "![efficiency](efficiency.png)"
    if (has_peers) { print ""; print "![peers](peers.png)" }
}' "$results/summary.tsv" >"$results/results.md"

rm -f "$results/scaling.png" "$results/efficiency.png" "$results/peers.png"
if command -v gnuplot >/dev/null 2>&1; then
    if [ -s "$results/peers.dat" ]; then
        gnuplot -e "dir='$results'; subtitle='$(echo "$peers_machine" | tr -d "'")'; cmdline='$(echo "$command" | tr -d "'")'" "$perf_dir/peers.gp" ||
            echo "perf/run.sh: gnuplot failed: no peers chart" >&2
    fi
    has_scaling=0
    has_efficiency=0
    [ -s "$results/scaling.dat" ] && has_scaling=1
    [ -s "$results/efficiency-w1.dat" ] && [ -s "$results/efficiency-w2.dat" ] && has_efficiency=1
    gnuplot -e "dir='$results'; scaling=$has_scaling; efficiency=$has_efficiency" \
        "$perf_dir/charts.gp" || echo "perf/run.sh: gnuplot failed: no charts" >&2
else
    echo "perf/run.sh: gnuplot not found (apt-get install gnuplot-nox): no charts" >&2
fi

if [ "${BR_PERF_PUBLISH:-0}" = 1 ]; then
    mkdir -p "$root/docs/perf"
    # The peers' chart and table from any run that has them; the whole
    # table, the JSON and the other charts only from a whole run (no
    # batchring-perf flags), so that a filtered run never replaces them.
    if [ -s "$results/peers.md" ]; then
        cp "$results/peers.md" "$root/docs/perf/peers.md"
        [ -f "$results/peers.png" ] && cp "$results/peers.png" "$root/docs/perf/peers.png"
    fi
    if [ $# -eq 0 ]; then
        cp "$results/results.md" "$root/docs/perf/results.md"
        cp "$json" "$root/docs/perf/results.json"
        for png in scaling.png efficiency.png; do
            [ -f "$results/$png" ] && cp "$results/$png" "$root/docs/perf/$png"
        done
    else
        echo "perf/run.sh: a filtered run: docs/perf/results.md, results.json and the scaling and efficiency charts left as they were" >&2
    fi
    echo "perf/run.sh: published to docs/perf/" >&2
fi

echo >&2
sed -n '/^| case/,/^Targets/p' "$results/results.md" >&2
[ -s "$results/peers.md" ] && cat "$results/peers.md" >&2
echo "perf/run.sh: results in $results (results.md, summary.tsv, latest.json, scaling.png, efficiency.png, peers.md, peers.png)" >&2
