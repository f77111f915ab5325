# Lemma 6 / Thm 2 check on the paper's 1-D mixtures (theory/theory_lemma6 part (b), lemma6_mixture.csv):
# W1 between the reverse-SDE output with sum_i lambda_i s_i (exact scores, 1000 EM steps) and p_lambda's exact CDF,
# against the Monte-Carlo floor of exact samples. Usage: gnuplot -e "dir='DIR'" lemma6_mixture.gp
if (!exists("dir")) dir = "results/theory"
set terminal pngcairo size 1200,500 font ",11"
set output dir."/lemma6_mixture.png"
set datafile separator ","
f = dir."/lemma6_mixture.csv"
set multiplot layout 1,2 title "Lemma 6 on the paper's 1-D mixtures (VE {/Symbol s}=25, exact auxiliary scores)"
set xlabel "{/Symbol l}_1"; set key top left font ",9"
set title "W1 to p_{/Symbol l} (exact CDF)"; set ylabel "W1"; set logscale y
plot f using "lambda1":"w1_sde" w lp lw 2 pt 7 lc rgb "red" t "reverse SDE with {/Symbol S}{/Symbol l}_i s_i, prior start", \
     f using "lambda1":"w1_sde_gammaT" w lp lw 2 pt 5 lc rgb "blue" t "same, started at {/Symbol g}_T (Lemma 6 setting)", \
     f using "lambda1":"w1_exact_floor" w lp lw 2 pt 4 lc rgb "black" t "n exact samples of p_{/Symbol l} (MC floor)"
unset logscale y
set title "means"; set ylabel "mean"
plot f using "lambda1":"mean_samples" w lp lw 2 pt 7 lc rgb "red" t "reverse SDE output, prior start", \
     f using "lambda1":"mean_samples_gammaT" w lp lw 2 pt 5 lc rgb "blue" t "reverse SDE output, {/Symbol g}_T start", \
     f using "lambda1":"mean_bary" w lp lw 2 pt 4 lc rgb "black" t "p_{/Symbol l} (quadrature)"
unset multiplot
