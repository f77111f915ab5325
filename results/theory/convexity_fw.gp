# Frank-Wolfe on vanilla fusion (App. D.1.2, Algorithm 2): primal gap f(lambda_t) - f*, certified duality gap and
# the O(1/t) bound 2 L diam^2/(t+2) (theory/theory_convexity, convexity_fw.csv).
# Usage: gnuplot -e "dir='DIR'" convexity_fw.gp -> DIR/convexity_fw.png
if (!exists("dir")) dir = "results/theory"
set terminal pngcairo size 1200,500 font ",11"
set output dir."/convexity_fw.png"
set datafile separator ","
f = dir."/convexity_fw.csv"
set logscale xy; set format y "10^{%L}"
set xlabel "iteration t"; set ylabel "gap"
set key bottom left font ",9" noenhanced
fl(v) = (v > 1e-16 ? v : NaN)
set multiplot layout 1,2 title "Frank-Wolfe for eq. 9: primal gap vs the O(1/t) bound"
do for [k in "2 3"] {
  set title "k = ".k
  plot f using (column("iter")+1):((strcol("k") eq k && strcol("rule") eq "open_loop") ? fl(column("primal_gap")) : NaN) w l lw 2 lc rgb "blue" t "primal gap, step 2/(t+2)", \
       f using (column("iter")+1):((strcol("k") eq k && strcol("rule") eq "paper") ? fl(column("primal_gap")) : NaN) w l lw 2 lc rgb "dark-green" t "primal gap, paper's step", \
       f using (column("iter")+1):((strcol("k") eq k && strcol("rule") eq "open_loop") ? fl(column("dual_gap")) : NaN) w l dt 2 lc rgb "blue" t "duality gap (certificate), 2/(t+2)", \
       f using (column("iter")+1):((strcol("k") eq k && strcol("rule") eq "open_loop" && column("iter") > 0) ? column("bound") : NaN) w l lw 2 lc rgb "red" t "bound 2 L diam^2/(t+2)"
}
unset multiplot
