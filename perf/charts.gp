# SPDX-License-Identifier: MIT
#
# Charts of a batchring-perf run, from the data files perf/run.sh writes:
#   gnuplot -e "dir='perf/results'" perf/charts.gp
# scaling.dat:        workers  batches_per_s  ideal_batches_per_s  ratio
# efficiency-w1.dat,
# efficiency-w2.dat:  batch_bytes  ratio  consumer_GBps  baseline_GBps
# Writes scaling.png and efficiency.png into the same directory.

if (!exists("dir")) dir = "perf/results"
if (!exists("subtitle")) subtitle = ""
# perf/run.sh says which charts have data (a filtered run may have neither).
if (!exists("scaling")) scaling = 1
if (!exists("efficiency")) efficiency = 1

set terminal pngcairo size 1100,450 font "sans,10"
set grid lc rgb "#dddddd"
set key top left box opaque

# Scaling: a loader that sleeps 2 ms per batch, over 1..32 workers.
if (scaling) {
    set output dir."/scaling.png"
    set multiplot layout 1,2 title "batchring scaling: loader sleeps 2 ms per batch (medians)".subtitle
    set logscale xy 2
    set xlabel "workers"
    set ylabel "batches/s"
    set xtics (1, 2, 4, 8, 16, 32)
    set format y "%.0f"
    plot dir."/scaling.dat" using 1:3 with lines dt 2 lw 2 lc rgb "#888888" title "ideal: workers x 500", \
         ""                 using 1:2 with linespoints pt 7 lw 2 lc rgb "#1f77b4" title "measured"
    unset logscale y
    set ylabel "scaling efficiency (measured / ideal)"
    set yrange [0:1.1]
    set format y "%.1f"
    set key bottom left
    plot 0.9 with lines dt 2 lw 2 lc rgb "#d62728" title "target 0.90", \
         dir."/scaling.dat" using 1:4 with linespoints pt 7 lw 2 lc rgb "#1f77b4" title "batchring"
    unset multiplot
}

# Zero-copy efficiency: bytes/s the consumer sees over the same loader
# writing into private memory in one process, by batch size.
if (efficiency) {
    reset
    set terminal pngcairo size 1100,450 font "sans,10"
    set output dir."/efficiency.png"
    set grid lc rgb "#dddddd"
    set multiplot layout 1,2 title "batchring zero-copy efficiency: a memcpy loader, consumer GB/s / private-loop GB/s (medians)".subtitle
    set logscale x 2
    set xlabel "batch bytes"
    set xtics ("4 KiB" 4096, "64 KiB" 65536, "1 MiB" 1048576, "16 MiB" 16777216)
    set xrange [2048:33554432]
    set ylabel "efficiency"
    set yrange [0:*]
    set offsets graph 0, graph 0, graph 0.3, graph 0  # room for the key above the data
    set key top left box opaque
    plot 0.9 with lines dt 2 lw 2 lc rgb "#d62728" title "target 0.90 (1 MiB, 16 MiB, 1 worker)", \
         dir."/efficiency-w1.dat" using 1:2 with linespoints pt 7 lw 2 lc rgb "#1f77b4" title "1 worker", \
         dir."/efficiency-w2.dat" using 1:2 with linespoints pt 5 lw 2 lc rgb "#2ca02c" title "2 workers (two loaders against one: can pass 1)"
    set ylabel "GB/s"
    set offsets
    set autoscale y
    set yrange [0:*]
    set key top right box opaque
    plot dir."/efficiency-w1.dat" using 1:4 with linespoints pt 6 lw 2 dt 2 lc rgb "#888888" title "private loop (baseline)", \
         ""                       using 1:3 with linespoints pt 7 lw 2 lc rgb "#1f77b4" title "batchring, 1 worker", \
         dir."/efficiency-w2.dat" using 1:3 with linespoints pt 5 lw 2 lc rgb "#2ca02c" title "batchring, 2 workers"
    unset multiplot
}
