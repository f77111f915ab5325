# The Taylor claim measured (paper §5.2 / App. H: merging approximates the barycenter only for small fine-tunes):
# against ||dW|| (Frobenius over every adapted tensor of both LoRAs, LoRA scale swept), log-log, with the slopes
# of digits_slopes.csv (least squares on the smaller half of the grid) in the legend.
# usage: gnuplot -e "dir='results/sdxl'" results/sdxl/digits_taylor.gp
if (!exists("dir")) dir = 'results/sdxl'
set datafile separator ","
set terminal pngcairo size 1200,500 noenhanced
set output dir.'/digits_taylor.png'
f = dir.'/digits_sweep.csv'
sl = dir.'/digits_slopes.csv'
# the slope of one quantity on the small range, read from digits_slopes.csv
slope(q) = system(sprintf("awk -F, '$1 == \"%s\" && $2 == \"small\" {print $6}' '%s'", q, sl))
set multiplot layout 1,2
set logscale xy
set grid
set format y '%.0e'
set xlabel '||dW|| (Frobenius, both adapters)'
set key top left font ",8"
set title 'score gap on noised held-out data (lambda = w = 1/2)'
plot f u 2:4 every ::1 w lp pt 5 t 'E||s_merge - (s_7+s_9)/2||^2, slope '.slope('score_gap_sq'), \
     f u 2:6 every ::1 w lp pt 7 t 'same, std(t)^2-weighted, slope '.slope('score_gap_sq_weighted'), \
     f u 2:7 every ::1 w lp pt 9 t 'first-order shift E||(s_7+s_9)/2 - s_base||^2, slope '.slope('first_order_shift_sq')
set title 'seed-paired sample distance (RMS per pixel)'
plot f u 2:8 every ::1 w lp pt 5 t 'merge vs barycenter, slope '.slope('sample_dist_merge_bary'), \
     f u 2:9 every ::1 w lp pt 7 t 'barycenter vs base, slope '.slope('sample_dist_bary_base')
unset multiplot
