# lines.gp: one line per series, y against x (either axis logarithmic).
#
# moebench report writes NAME.gp as the variables below followed by this
# file, and NAME.dat; `gnuplot NAME.gp` in the plots directory re-renders
# NAME.svg and NAME.png. Variables (strings from result files arrive
# escaped as single-quoted gnuplot strings):
#   out              file stem: reads out.dat, writes out.svg and out.png
#   title, xlabel, ylabel   text
#   xlog, ylog       1: logarithmic axis (base xbase for x)
#   xbase            the x axis' log base (2 for byte sizes)
#   xfmt             the x tic format ('%.0b%BB': 1KiB, 4MiB...)
#   series[S]        the lines' names (legend)
# out.dat: one block per series (blocks separated by two blank lines):
# x y per line, x ascending.
set encoding utf8
set title title
set xlabel xlabel
set ylabel ylabel
set key below
set grid xtics ytics
set format x xfmt
set format y '%g'
if (xlog) { set logscale x xbase }
if (ylog) { set logscale y }
set terminal svg size 960,540 noenhanced font 'sans,11' background '#ffffff'
set output out.'.svg'
plot for [i=1:|series|] out.'.dat' index (i-1) using 1:2 with linespoints pointsize 0.6 title series[i]
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
	set terminal pngcairo size 960,540 noenhanced font 'sans,10' background '#ffffff'
} else {
	set terminal png size 960,540 noenhanced background '#ffffff'
}
set output out.'.png'
replot
set output
