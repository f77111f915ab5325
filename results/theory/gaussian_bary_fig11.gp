# Paper Figure 11 (App. H.4) re-drawn from gaussian_bary_fig11.csv (written by theory/theory_gaussian_bary).
# Usage: gnuplot -e "dir='results/theory'" results/theory/gaussian_bary_fig11.gp  -> dir/gaussian_bary_fig11.png
if (!exists("dir")) dir = "results/theory"
set terminal pngcairo size 1200,480 font ",11"
set output dir."/gaussian_bary_fig11.png"
set datafile separator ","
set multiplot layout 1,2 title "KL barycenter of two Gaussians (Thm 1, App. H.4 / Fig. 11)"
set xlabel "x"; set ylabel "density"; set key top left font ",9"; set offsets 0,0,graph 0.4,0
f = dir."/gaussian_bary_fig11.csv"
set title "N(-3,1) and N(3,1)"
plot f using "x":"eq_p_lam1_1" with lines lw 2 lc rgb "red" title "{/Symbol l}_1 = 1", \
     f using "x":"eq_p_lam1_0" with lines lw 2 lc rgb "purple" title "{/Symbol l}_1 = 0", \
     f using "x":"eq_bary_0.5_closed" with lines lw 3 lc rgb "blue" title "barycenter {/Symbol l}_1 = 0.5 (closed form)", \
     f every 10 using "x":"eq_bary_0.5_quad" with points pt 6 lc rgb "black" title "quadrature of {/Symbol P} p_i^{/Symbol l}_i"
set title "N(-2,0.25) and N(3,4)"
plot f using "x":"uneq_p_lam1_1" with lines lw 2 lc rgb "red" title "{/Symbol l}_1 = 1", \
     f using "x":"uneq_p_lam1_0" with lines lw 2 lc rgb "purple" title "{/Symbol l}_1 = 0", \
     f using "x":"uneq_bary_0.5_closed" with lines lw 3 lc rgb "blue" title "barycenter {/Symbol l}_1 = 0.5 (closed form)", \
     f every 10 using "x":"uneq_bary_0.5_quad" with points pt 6 lc rgb "black" title "quadrature"
unset multiplot
