/* digits: the digits version of the SDXL comparison (paper §5.2, App. H; issue 10 item 3), run by
 * `exp_sdxl --family digits`: KL-barycenter sampling versus checkpoint merging of two LoRA fine-tunes (7s, 9s) of
 * one ScoreNet trained here on MNIST 7/9, and the Taylor-expansion claim measured. See digits.c. */
#ifndef EXP_SDXL_DIGITS_H
#define EXP_SDXL_DIGITS_H

/* The whole program for --family digits (argv as main's); returns the exit status. */
int exp_digits_main(int argc, char **argv);

#endif
