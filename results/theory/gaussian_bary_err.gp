# Closed-form Gaussian barycenter vs quadrature (Thm 1, App. H.4): errors over the lambda sweep,
# from gaussian_bary.csv (theory/theory_gaussian_bary). Usage: gnuplot -e "dir='DIR'" gaussian_bary_err.gp
if (!exists("dir")) dir = "results/theory"
set terminal pngcairo size 900,560 font ",11"
set output dir."/gaussian_bary_err.png"
set datafile separator ","
f = dir."/gaussian_bary.csv"
set logscale y; set format y "10^{%L}"; set yrange [1e-18:1e-6]
set xlabel "{/Symbol l}_1"; set ylabel "error (floored at 1e-18)"
set title "Gaussian KL barycenter: closed form vs GSL quadrature of {/Symbol P} p_i^{/Symbol l}_i"
set key outside right
fl(v) = (abs(v) > 1e-18 ? abs(v) : 1e-18)
plot for [c in "equal_var unequal_var k3"] f using "lambda1":(strcol("case") eq c ? fl(column("err_mu")) : NaN) with linespoints noenhanced title c." |mean err|", \
     for [c in "equal_var unequal_var k3"] f using "lambda1":(strcol("case") eq c ? fl(column("relerr_var")) : NaN) with linespoints dt 2 noenhanced title c." |var err|/var", \
     for [c in "equal_var unequal_var k3"] f using "lambda1":(strcol("case") eq c ? fl(column("kl_closed_vs_quad")) : NaN) with points pt 7 noenhanced title c." |KL|"
