# W1 to the target vs n (log-log), ours from table6.csv with the paper's Table 6 overlaid (labelled "paper").
# usage: gnuplot -e "dir='results/gaussian'" results/gaussian/w1_vs_n.gp
if (!exists("dir")) dir = 'results/gaussian'
set datafile separator ","
set terminal pngcairo size 1000,750 noenhanced
set output dir.'/w1_vs_n.png'
set logscale xy
set xlabel 'n (target training samples)'
set ylabel 'W1 to the target (mean over repeats)'
set key outside below maxrows 4 font ",9"
set xrange [20:1600]
set grid
t = dir.'/table6.csv'
paper = 'results/paper/table6.csv'
sel(m, meth, cal, sc, smp) = (strcol(2) eq m && strcol(3) eq meth && strcol(4) eq cal && strcol(5) eq sc && strcol(6) eq smp)
plot t u 1:(sel("shared","baseline","-","learned","sde") ? $8 : 1/0):9 w yerrorlines lw 2 t 'baseline (ours)', \
     t u 1:(sel("paper","scorefusion","sgd","learned","sde") ? $8 : 1/0):9 w yerrorlines lw 2 t 'ScoreFusion, paper mode, SGD (ours)', \
     t u 1:(sel("corrected","scorefusion","sgd","learned","sde") ? $8 : 1/0):9 w yerrorlines lw 2 t 'ScoreFusion, corrected, SGD (ours)', \
     t u 1:(sel("paper","scorefusion","exact-qp","exact","sde") ? $8 : 1/0) w lp t 'ScoreFusion, paper mode, exact scores+QP (ours)', \
     t u 1:(sel("paper","vanilla","frank-wolfe","exact","inverse-cdf") ? $8 : 1/0) w lp t 'vanilla fusion, paper mode, exact sampling (ours)', \
     t u 1:(sel("corrected","vanilla","frank-wolfe","exact","inverse-cdf") ? $8 : 1/0) w lp t 'vanilla fusion, corrected, exact sampling (ours)', \
     paper u 1:2:3 every ::1 w yerrorbars pt 7 ps 1.5 lc rgb 'black' t 'baseline (paper)', \
     paper u 1:4:5 every ::1 w yerrorbars pt 5 ps 1.5 lc rgb 'red' t 'ScoreFusion (paper)'
