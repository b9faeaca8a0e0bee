# SPDX-License-Identifier: GPL-2.0
# A series over commits, rendered to SVG on standard output by
# kmmu-regressd:
#
#   gnuplot -e "dir='DIR'; nlines=N; nfloors=F" plots/series.gp > plot.svg
#
# DIR holds setup.gp (title, commit tics, change points as labelled
# points, annotations as vertical markers) and, for each line i = 1..N
# (a host class, or "kmmu amd" / "KVM amd" on a comparison), i.median
# ("x median" rows after a header naming the line) and i.samples ("x
# sample": every raw sample, drawn as faint points); for each floor
# j = 1..F, j.floor ("x median" of the floor the figures were measured
# against, per host class), drawn dotted on the right axis.

set terminal svg size 900,420 dynamic font 'DejaVu Sans,11' background rgb 'white'
set output
set encoding utf8
set border 3 lc rgb '#555555'
set tics nomirror
set grid ytics lc rgb '#e0e0e0' lw 1
set key outside right top noenhanced
set xlabel 'commit'
set yrange [*:*]
set offsets 0, 0, graph 0.08, graph 0.08
set lmargin 10
set rmargin 16

# Solid colours for the medians; the same hues, light, for raw samples.
line_colours = '#1f77b4 #d62728 #2ca02c #ff7f0e #9467bd #8c564b #e377c2 #17becf'
faint_colours = '#b3cde3 #f4b6b6 #b8e0b8 #ffd8b0 #d7c9ea #d9c3bd #f6c8e8 #b3e9ef'
line_colour(i) = word(line_colours, (i - 1) % 8 + 1)
faint_colour(i) = word(faint_colours, (i - 1) % 8 + 1)
# setup.gp may dash some lines (KVM's, on a comparison).
dashes = '1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1'
dash(i) = int(word(dashes, i))

load dir.'/setup.gp'

if (!exists('nfloors')) nfloors = 0
if (nfloors > 0) {
	set y2tics nomirror tc rgb '#777777'
	set y2label 'floor, ns/entry' tc rgb '#777777'
	set y2range [0:*]
	set rmargin 22
}

plot for [i=1:nlines] dir.'/'.i.'.samples' using 1:2 with points pt 7 ps 0.35 \
	lc rgb faint_colour(i) notitle, \
     for [i=1:nlines] dir.'/'.i.'.median' using 1:2 with linespoints lw 2 pt 7 ps 0.5 \
	lc rgb line_colour(i) dt dash(i) title columnheader(2), \
     for [j=1:nfloors] dir.'/'.j.'.floor' using 1:2 axes x1y2 with lines lw 1.5 dt 3 \
	lc rgb '#777777' title columnheader(2)
