# SPDX-License-Identifier: MIT
#
# Reads batchring-perf's JSON (Google Benchmark 1.7 layout: one key per
# line) and prints one tab-separated row per case and parameters, from the
# median aggregate over repetitions:
#
#   case bytes workers ring_bytes value value_unit baseline baseline_name
#   ratio ratio_name target at_least verdict items_per_second extra
#
# verdict is pass, MISS, or - (no target for these parameters); extra holds
# the case's other counters as name=value. Failed runs print verdict
# "failed" and their message. Lines starting with "#" carry the context
# (machine, kernel, date, load) for the report.
#
# mawk-compatible: no gensub, no arrays of arrays.

function strip(s) {
    sub(/^[ \t]*"/, "", s); sub(/",?[ \t]*$/, "", s); return s
}

function param(name, key,    m) {
    if (match(name, "/" key ":[0-9]+")) {
        m = substr(name, RSTART + length(key) + 2, RLENGTH - length(key) - 2)
        return m
    }
    return "-"
}

BEGIN { OFS = "\t"; in_bench = 0; depth = 0 }

# The context block: a few scalar keys worth quoting in the report.
!in_bench && /^    "(date|host_name|num_cpus|mhz_per_cpu|cpu_model|kernel|online_cpus|batchring_version|library_build_type|cpus_allowed|cache_sharing|llc_domains|br_cpus)":/ {
    line = $0
    sub(/^[ \t]*"/, "", line)
    key = line; sub(/".*/, "", key)
    val = line; sub(/^[^:]*:[ \t]*/, "", val); sub(/,[ \t]*$/, "", val); gsub(/"/, "", val)
    print "#", key, val
}
!in_bench && /^    "load_avg":/ {
    val = $0; sub(/^[^\[]*\[/, "", val); sub(/\].*/, "", val)
    print "#", "load_avg", val
}

/^  "benchmarks": \[/ { in_bench = 1; next }

in_bench && /^    \{/ { delete kv; nkeys = 0; next }

in_bench && /^      "/ {
    line = $0
    sub(/^      "/, "", line)
    key = line; sub(/".*/, "", key)
    val = line; sub(/^[^"]*":[ \t]*/, "", val); sub(/,[ \t]*$/, "", val)
    if (val ~ /^"/) { sub(/^"/, "", val); sub(/"$/, "", val) }
    kv[key] = val
    order[++nkeys] = key
    next
}

in_bench && /^    \}/ {
    failed = (kv["error_occurred"] == "true")
    if (!failed && !(kv["run_type"] == "aggregate" && kv["aggregate_name"] == "median"))
        next
    if (failed && kv["run_type"] == "aggregate")
        next
    name = kv["run_name"]
    if (failed && (name in reported_failure))
        next
    c = name; sub(/\/.*/, "", c)
    nlab = split(kv["label"], lab, ";")
    verdict = "-"
    if (failed) {
        reported_failure[name] = 1
        verdict = "failed"
    } else if ("target" in kv) {
        if (kv["target_at_least"] + 0)
            verdict = (kv["ratio"] + 0 >= kv["target"] + 0) ? "pass" : "MISS"
        else
            verdict = (kv["ratio"] + 0 <= kv["target"] + 0) ? "pass" : "MISS"
    }
    extra = ""
    for (i = 1; i <= nkeys; i++) {
        k = order[i]
        if (k ~ /^(name|family_index|per_family_instance_index|run_name|run_type|repetitions|repetition_index|threads|aggregate_name|aggregate_unit|iterations|real_time|cpu_time|time_unit|label|value|baseline|ratio|target|target_at_least|items_per_second|bytes_per_second|error_occurred|error_message)$/)
            continue
        extra = extra (extra == "" ? "" : " ") k "=" kv[k]
    }
    if (failed)
        extra = kv["error_message"]
    print c, param(name, "bytes"), param(name, "workers"), param(name, "ring_bytes"),
          ("value" in kv) ? kv["value"] : "-", lab[1],
          ("baseline" in kv) ? kv["baseline"] : "-", (nlab >= 2 ? lab[2] : ""),
          ("ratio" in kv) ? kv["ratio"] : "-", (nlab >= 3 ? lab[3] : ""),
          ("target" in kv) ? kv["target"] : "-", ("target_at_least" in kv) ? kv["target_at_least"] : "-",
          verdict, ("items_per_second" in kv) ? kv["items_per_second"] : "-", extra
    next
}

in_bench && /^  \]/ { in_bench = 0 }
