# Digits version of the paper's Figures 8-10 (KL-barycenter sampling vs checkpoint merging, §5.2 / App. H):
# (points, not lines: the barycenter and merge rows interleave in the CSV) class fractions of the seed-paired samples against lambda (barycenter) and w (merge), Wilson 95% intervals, and
# the classifier's mean entropy. usage: gnuplot -e "dir='results/sdxl'" results/sdxl/digits_fractions.gp
if (!exists("dir")) dir = 'results/sdxl'
set datafile separator ","
set terminal pngcairo size 1500,450 noenhanced
set output dir.'/digits_fractions.png'
f = dir.'/digits_samples.csv'
set multiplot layout 1,3
set grid
set xrange [-0.05:1.05]
set xlabel 'lambda (barycenter) = w (merge): weight of the 7 fine-tune'
set key top left font ",8"
set yrange [0:1]
do for [k in "7 9"] {
  c = (k eq "7") ? 4 : 7
  set title 'fraction classified as '.k
  plot f u ($2 - 0.01):(strcol(1) eq "barycenter" ? column(c) : 1/0):c+1:c+2 every ::1 w yerrorbars pt 5 t 'barycenter', \
       f u ($2 + 0.01):(strcol(1) eq "merge" ? column(c) : 1/0):c+1:c+2 every ::1 w yerrorbars pt 7 t 'merge'
}
set title 'other digits (o) and mean classifier entropy in nats (x)'
set yrange [0:*]
plot f u 2:(strcol(1) eq "barycenter" ? column(10) : 1/0) every ::1 w p pt 5 t 'barycenter: other', \
     f u 2:(strcol(1) eq "merge" ? column(10) : 1/0) every ::1 w p pt 7 t 'merge: other', \
     f u 2:(strcol(1) eq "barycenter" ? column(13) : 1/0) every ::1 w p pt 2 t 'barycenter: entropy', \
     f u 2:(strcol(1) eq "merge" ? column(13) : 1/0) every ::1 w p pt 3 t 'merge: entropy'
unset multiplot
