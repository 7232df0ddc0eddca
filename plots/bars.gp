# bars.gp: grouped bars with whiskers: one cluster per category (a case),
# one bar per series (a system), whiskers from low to high.
#
# moebench report writes NAME.gp as the variables below followed by this
# file, and NAME.dat; `gnuplot NAME.gp` in the plots directory re-renders
# NAME.svg and NAME.png. Variables (strings from result files arrive
# escaped as single-quoted gnuplot strings):
#   out              file stem: reads out.dat, writes out.svg and out.png
#   title, ylabel    text
#   ylog             1: logarithmic y axis
#   series[S]        the bars' names (legend)
#   cats[C]          the clusters' names (x axis)
# out.dat: one line per category: its index (0..C-1), then value, low and
# high for each series; '?' where a series has no value.
set encoding utf8
set datafile missing '?'
set style data histogram
set style histogram errorbars gap 1 lw 1
set style fill solid 0.8 border -1
set title title
set ylabel ylabel
set key below
set grid ytics
set xtics () nomirror scale 0
set for [i=1:|cats|] xtics add (cats[i] i-1)
if (|cats| > 3) { set xtics rotate by 25 right }
if (ylog) { set logscale y } else { set yrange [0:*] }
set terminal svg size 960,540 noenhanced font 'sans,11' background '#ffffff'
set output out.'.svg'
plot for [i=1:|series|] out.'.dat' using (column(3*i-1)):(column(3*i)):(column(3*i+1)) title series[i]
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
	set terminal pngcairo size 960,540 noenhanced font 'sans,10' background '#ffffff'
} else {
	set terminal png size 960,540 noenhanced background '#ffffff'
}
set output out.'.png'
replot
set output
