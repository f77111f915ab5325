# Prop. 1: F(lambda) = KL(nu || p_lambda) on the k = 2 simplex and its second differences (theory/theory_convexity,
# convexity_k2.csv). Usage: gnuplot -e "dir='DIR'" convexity_k2.gp -> DIR/convexity_k2.png
if (!exists("dir")) dir = "results/theory"
set terminal pngcairo size 1200,480 font ",11"
set output dir."/convexity_k2.png"
set datafile separator ","
f = dir."/convexity_k2.csv"
set multiplot layout 1,2 title "Prop. 1: convexity of vanilla fusion's objective (paper 1-D target, raw auxiliaries)"
set xlabel "{/Symbol l}_1"; set ylabel "F = KL({/Symbol n} || p_{/Symbol l})"
set title "F on the simplex"; set key top left
plot f using "lambda1":"F" w l lw 2 lc rgb "blue" t "F({/Symbol l}) by quadrature"
set title "second derivative"; set ylabel "F''"; set key top right
set logscale y
plot f using "lambda1":"second_diff_over_h2" w p pt 7 ps 0.5 lc rgb "black" t "second difference / h^2", \
     f using "lambda1":"exact_F2" w l lw 2 lc rgb "red" t "Var_{p_{/Symbol l}}(log p_1 - log p_2) (exact)"
unset multiplot
