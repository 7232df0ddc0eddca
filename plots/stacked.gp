# stacked.gp: stacked bars: one bar per category, one stacked part per
# component (e.g. the phases of a training step).
#
# moebench report writes NAME.gp as the variables below followed by this
# file, and NAME.dat; `gnuplot NAME.gp` in the plots directory re-renders
# NAME.svg and NAME.png. Variables (strings from result files arrive
# escaped as single-quoted gnuplot strings):
#   out              file stem: reads out.dat, writes out.svg and out.png
#   title, ylabel    text
#   parts[P]         the components' names (legend), bottom first
#   cats[C]          the bars' names (x axis)
# out.dat: one line per bar: its index (0..C-1), then one value per part;
# '?' where a part is missing.
set encoding utf8
set datafile missing '?'
set style data histogram
set style histogram rowstacked
set style fill solid 0.8 border -1
set boxwidth 0.6
set title title
set ylabel ylabel
set key below
set grid ytics
set yrange [0:*]
set xtics () nomirror scale 0
set for [i=1:|cats|] xtics add (cats[i] i-1)
if (|cats| > 3) { set xtics rotate by 25 right }
set terminal svg size 960,540 noenhanced font 'sans,11' background '#ffffff'
set output out.'.svg'
plot for [i=1:|parts|] out.'.dat' using (column(i+1)) title parts[i]
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
	set terminal pngcairo size 960,540 noenhanced font 'sans,10' background '#ffffff'
} else {
	set terminal png size 960,540 noenhanced background '#ffffff'
}
set output out.'.png'
replot
set output
