/* exp_sdxl: the commands of the exp_sdxl binary (paper §5.2, App. H). main.c picks one from --family (and, for
 * sdxl, --experiment); each parses every option itself. */
#ifndef SF_EXP_SDXL_H
#define SF_EXP_SDXL_H

/* exp_sdxl --family sdxl --experiment: KL-barycenter sampling vs checkpoint merging of two LoRAs (experiment.c) */
int es_experiment_main(int argc, char **argv);

#endif
