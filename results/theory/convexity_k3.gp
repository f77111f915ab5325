# Prop. 1, k = 3: F(lambda) = KL(nu || p_lambda) on the triangle (theory/theory_convexity, convexity_k3.csv),
# drawn over (lambda_1, lambda_2). Usage: gnuplot -e "dir='DIR'" convexity_k3.gp -> DIR/convexity_k3.png
if (!exists("dir")) dir = "results/theory"
set terminal pngcairo size 800,650 font ",11"
set output dir."/convexity_k3.png"
set datafile separator ","
f = dir."/convexity_k3.csv"
set title "F({/Symbol l}) = KL({/Symbol n} || p_{/Symbol l}), k = 3 (log scale colour)"
set xlabel "{/Symbol l}_1"; set ylabel "{/Symbol l}_2"
set logscale cb; set cblabel "F"
set size ratio 1
set xrange [0:1]; set yrange [0:1]
plot f using "lambda1":"lambda2":"F" with points pt 5 ps 1.2 palette notitle
