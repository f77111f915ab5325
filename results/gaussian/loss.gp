# Training curves of the auxiliary networks and the baselines (per-epoch train loss and EMA validation loss).
# usage: gnuplot -e "dir='results/gaussian'" results/gaussian/loss.gp
if (!exists("dir")) dir = 'results/gaussian'
set datafile separator ","
set terminal pngcairo size 1000,450 noenhanced
set xlabel 'epoch'
set ylabel 'DSM loss'
set logscale y
set grid
set key top right font ",9"
set output dir.'/loss_aux.png'
set multiplot layout 1,2
set title 'auxiliaries: EMA validation loss'
files = system('ls '.dir.'/loss_aux*.csv 2>/dev/null')
plot for [f in files] f u 1:5 every ::1 w l t system("basename ".f." .csv | sed 's/loss_//'")
set title 'baselines: EMA validation loss'
files = system('ls -v '.dir.'/loss_baseline_n*.csv 2>/dev/null')
plot for [f in files] f u 1:5 every ::1 w l t system("basename ".f." .csv | sed 's/loss_baseline_//'")
unset multiplot
