# SPDX-License-Identifier: MIT
#
# The peers chart of a batchring-perf run, from the file perf/run.sh writes:
#   gnuplot -e "dir='perf/results'; subtitle='floor, CPUs'; cmdline='the run'" perf/peers.gp
# peers.dat: order  torch_item  torch_batched  pread_loop  batchring, then
#            the CPU figures and the resident share (columns 6-10, the table's),
#            then batchring_from_python (column 11), its CPU (12) and its
#            ratios to the DataLoader and to the C consumer (13, 14)
#            (batches/s, medians; NaN for a peer that did not run)
# Writes peers.png into the same directory.

if (!exists("dir")) dir = "perf/results"
if (!exists("subtitle")) subtitle = ""
if (!exists("cmdline")) cmdline = ""

set terminal pngcairo size 1000,520 font "sans,10" noenhanced
set output dir."/peers.png"
set title "Batches/s delivered to the trainer: 64 x 4 KiB records per batch, 2 workers, one cached file (medians)\n".subtitle."\n".cmdline
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y 10
set yrange [100:*]
set format y "%.0f"
set ylabel "batches/s (log scale)"
set grid ytics lc rgb "#dddddd"
set key top left box opaque
set xtics nomirror
set xrange [-0.6:1.6]
set offsets 0, 0, graph 0.25, 0
# Five bars per order, gap 1: bar i (0-4) centred at x + (i - 2) / 6.
plot dir."/peers.dat" using 2:xtic(1) title "PyTorch DataLoader (a record per __getitem__)" lc rgb "#ee4c2c", \
     ""               using 3 title "PyTorch DataLoader (batch sampler)" lc rgb "#f4a582", \
     ""               using 4 title "trainer's own pread loop" lc rgb "#888888", \
     ""               using 5 title "batchring records dataset, C trainer (br_next)" lc rgb "#1f77b4", \
     ""               using 11 title "batchring records dataset, Python trainer (torch tensors)" lc rgb "#6baed6", \
     ""               using ($0 - 2/6.):2:(sprintf("%.0f", $2)) with labels offset 0,0.7 notitle, \
     ""               using ($0 - 1/6.):3:(sprintf("%.0f", $3)) with labels offset 0,0.7 notitle, \
     ""               using ($0):4:(sprintf("%.0f", $4)) with labels offset 0,0.7 notitle, \
     ""               using ($0 + 1/6.):5:(sprintf("%.0f", $5)) with labels offset 0,0.7 notitle, \
     ""               using ($0 + 2/6.):11:(sprintf("%.0f", $11)) with labels offset 0,0.7 notitle
