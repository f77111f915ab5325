# Thm 4: error of the fitted ScoreFusion weights vs n (theory/theory_rates, rates_n.csv), next to the n^{-1/4}
# shape of the bound. Usage: gnuplot -e "dir='DIR'" rates_n.gp -> DIR/rates_n.png
if (!exists("dir")) dir = "results/theory"
set terminal pngcairo size 1200,500 font ",11"
set output dir."/rates_n.png"
set datafile separator ","
f = dir."/rates_n.csv"
set logscale xy; set format y "10^{%L}"; set format x "2^{%L}"
set logscale x 2
set xlabel "n (target samples)"; set ylabel "error"
set key bottom left font ",9" noenhanced
fl(v) = (v > 0 ? v : NaN)
set multiplot layout 1,2 title "Thm 4: calibration error with exact auxiliary scores (mean over repeats)"
do for [cs in "planted mixture"] {
  set title cs." target"
  plot for [tt in "0.0001 0.1"] f using "n":((strcol("case") eq cs && strcol("ttilde") eq tt) ? fl(column("tv_to_inf_mean")) : NaN) w lp lw 2 pt 7 t "TV(p_hat, p_inf), T~=".tt, \
       for [tt in "0.0001 0.1"] f using "n":((strcol("case") eq cs && strcol("ttilde") eq tt) ? fl(column("tv_mean")) : NaN) w lp dt 2 pt 4 t "TV(nu, p_hat), T~=".tt, \
       for [tt in "0.0001 0.1"] f using "n":((strcol("case") eq cs && strcol("ttilde") eq tt) ? fl(column("bound_n_quarter")) : NaN) w l lw 1 lc rgb "gray" t "n^{-1/4} (anchored at n=16), T~=".tt
}
unset multiplot
