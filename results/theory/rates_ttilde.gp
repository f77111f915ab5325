# The T~ trade-off (§3.2 / Thm 4): lambda_hat's variance and the error to the target vs T~ at fixed n, float32 and
# float64 (theory/theory_rates, rates_ttilde.csv). Usage: gnuplot -e "dir='DIR'" rates_ttilde.gp
if (!exists("dir")) dir = "results/theory"
set terminal pngcairo size 1200,500 font ",11" noenhanced
set output dir."/rates_ttilde.png"
set datafile separator ","
f = dir."/rates_ttilde.csv"
set logscale x; set format x "1e%L"
set xlabel "T~"; set key top right font ",9" noenhanced
set multiplot layout 1,2 title "T~ trade-off: calibration on t in [1e-3 T~, T~], exact scores"
set title "variance of lambda_hat_1 over repeats" noenhanced; set logscale y; set ylabel "Var"
plot for [c in "planted mixture"] for [p in "float32 float64"] f using "ttilde":((strcol("case") eq c && strcol("precision") eq p) ? column("lambda1_var") : NaN) w lp t c." ".p
set title "TV to the target" noenhanced; unset logscale y; set ylabel "TV"
plot for [c in "planted mixture"] f using "ttilde":((strcol("case") eq c && strcol("precision") eq "float32") ? column("tv_mean") : NaN) w lp lw 2 t c.": mean TV(nu, p_hat)", \
     for [c in "planted mixture"] f using "ttilde":((strcol("case") eq c && strcol("precision") eq "float32") ? column("tv_inf") : NaN) w lp dt 2 lw 2 pt 6 t c.": TV(nu, p_inf(T~)) (n = inf)"
unset multiplot
