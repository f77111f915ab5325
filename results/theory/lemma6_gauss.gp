# Lemma 6 / Thm 2 check, Gaussian auxiliaries (theory/theory_lemma6 part (a), lemma6_gauss.csv):
# KL(p_lambda || law of the reverse SDE at t = 0) vs lambda_1, for VE(sigma=25) and OU, equal / unequal variances.
# Usage: gnuplot -e "dir='DIR'" lemma6_gauss.gp  -> DIR/lemma6_gauss.png
if (!exists("dir")) dir = "results/theory"
set terminal pngcairo size 1200,500 font ",11"
set output dir."/lemma6_gauss.png"
set datafile separator ","
f = dir."/lemma6_gauss.csv"
fl(v) = (v > 1e-16 ? v : 1e-16)
set logscale y; set format y "10^{%L}"; set yrange [1e-16:10]
set xlabel "{/Symbol l}_1"; set ylabel "KL(p_{/Symbol l} || terminal law)  (floored at 1e-16)"
set key bottom center font ",9" noenhanced
set multiplot layout 1,2 title "Lemma 6: does the reverse SDE with {/Symbol S} {/Symbol l}_i s_i end at the KL barycenter?"
do for [sd in "VE OU"] {
  set title sd." SDE"
  plot f using "lambda1":((strcol("sde") eq sd && strcol("case") eq "equal_var") ? fl(column("kl_ode_gammaT")) : NaN) w lp lw 2 pt 7 lc rgb "blue" t "equal var: ODE from gamma_T (Lemma 6 setting)", \
       f using "lambda1":((strcol("sde") eq sd && strcol("case") eq "unequal_var") ? fl(column("kl_ode_gammaT")) : NaN) w lp lw 2 pt 7 lc rgb "red" t "unequal var: ODE from gamma_T", \
       f using "lambda1":((strcol("sde") eq sd && strcol("case") eq "equal_var") ? fl(column("kl_em")) : NaN) w lp dt 2 pt 4 lc rgb "blue" t "equal var: exact EM law (1000 steps, prior start)", \
       f using "lambda1":((strcol("sde") eq sd && strcol("case") eq "unequal_var") ? fl(column("kl_em")) : NaN) w lp dt 2 pt 4 lc rgb "red" t "unequal var: exact EM law", \
       f using "lambda1":((strcol("sde") eq sd) ? fl(column("kl_samp")) : NaN) w p pt 2 ps 1.5 lc rgb "black" t "EM samples (Gaussian fit)"
}
unset multiplot
