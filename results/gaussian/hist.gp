# Histograms like the paper's Figures 12-15: one PNG per n from hist_n<n>.csv (densities of the first sampling
# repeat of each model on [-15, 15], with the exact target density).
# usage: gnuplot -e "dir='results/gaussian'" results/gaussian/hist.gp
if (!exists("dir")) dir = 'results/gaussian'
set datafile separator ","
set terminal pngcairo size 900,500 noenhanced
set xlabel 'x (sample space)'
set ylabel 'density'
set xrange [-15:15]
set grid
set key top right
set style data steps
files = system('ls '.dir.'/hist_n*.csv 2>/dev/null')
do for [f in files] {
    n = system("basename ".f." .csv | sed 's/hist_n//'")
    set output dir.'/hist_n'.n.'.png'
    set title 'n = '.n.' target samples'
    ncol = int(system("head -1 ".f." | tr ',' '\n' | wc -l"))
    plot f u 1:2 w lines lw 3 lc rgb '#555555' t 'target (exact)', \
         for [c=3:ncol] f u 1:c w steps lw 1.5 t columnhead(c)
}
