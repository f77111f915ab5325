/* cli: strict parsing of command-line values shared by every binary.
 * Every parser names the offending flag in its one-line error (log_die), so "--n 3x" fails as
 * "exp_gaussian: error: --n: '3x' is not an integer". */
#ifndef SF_CLI_H
#define SF_CLI_H
#include <stddef.h>

double cli_double(const char *flag, const char *s);                       /* finite double */
double cli_double_range(const char *flag, const char *s, double lo, double hi);
long cli_long(const char *flag, const char *s, long lo, long hi);
/* comma-separated list, e.g. "32,64,128"; returns count; dies on an empty list, an empty item ("32,,64",
 * ",64", "64,"), a bad item or more than max items. The integers of cli_long_list must be distinct (they are
 * sizes or ids: a repeat would run the same work twice). */
size_t cli_long_list(const char *flag, const char *s, long *out, size_t max, long lo, long hi);
size_t cli_double_list(const char *flag, const char *s, double *out, size_t max);
/* comma-separated integers and inclusive ranges, e.g. "0-511" or "0,3,7-9", in the order given, into a new
 * array *out (free it); returns the count (at most max). Dies as cli_long_list does, and on a range a-b with
 * b < a and on a value given twice. */
size_t cli_long_ranges(const char *flag, const char *s, long **out, size_t max, long lo, long hi);
/* index of s in the NULL-terminated choices, or die listing the valid choices */
int cli_choice(const char *flag, const char *s, const char *const *choices);
/* create the directory (and parents) if needed; die if it cannot be created or written */
void cli_output_dir(const char *flag, const char *path);
/* The value of --flag (as "--flag V" or "--flag=V") in argv, or dflt: for options such as --profile that set
 * defaults, read before the getopt pass so that later flags override the profile whatever their order. */
const char *cli_prescan(int argc, char **argv, const char *flag, const char *dflt);
/* unknown option / missing argument from getopt_long: die with the usage hint */
void cli_bad_option(const char *arg) __attribute__((noreturn));

#endif
