/* fuzz_emnist_parts: libFuzzer harness for exp_emnist's readers of its cached parts (exp_emnist/evaluate.c
 * ee_eval_read: parts/eval_<model>[_n<n>].csv; exp_emnist/fusion.c ee_fusion_read: parts/lambda_n<n>.csv).
 * Parts outlive the run that wrote them and are copied between machines, so they are outside input. The input
 * is committed as each part through io_csv (first line as the header, the rest as the body), exactly as the
 * experiment commits its parts -- so the part comes with the .meta the readers may verify it against, and the
 * fuzzer reaches the parsing behind any checksum -- and read back through the public readers. The harness links
 * exp_emnist's objects (all but main.c). */
#include "ee.h"
#include "fuzz_util.h"
#include <errno.h>
#include <math.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char out[128];
    static int ready;
    if (!ready) {
        snprintf(out, sizeof out, "%s/results", fuzz_scratch_dir());
        char parts[160];
        snprintf(parts, sizeof parts, "%s/parts", out);
        if ((mkdir(out, 0755) && errno != EEXIST) || (mkdir(parts, 0755) && errno != EEXIST)) abort();
        ready = 1;
    }
    ee_config c;
    memset(&c, 0, sizeof c);
    c.out = out;
    char *pe = ee_path(&c, "parts/eval_aux1.csv"), *pn = ee_path(&c, "parts/eval_b1_n64.csv"),
         *pl = ee_path(&c, "parts/lambda_n64.csv");
    /* header = the input up to its first newline (a C string: up to a NUL too); body = the rest, verbatim */
    const uint8_t *nl = memchr(data, '\n', size);
    size_t hlen = nl ? (size_t)(nl - data) : size;
    char *header = malloc(hlen + 1);
    if (!header) abort();
    memcpy(header, data, hlen);
    header[hlen] = 0;
    static io_meta meta;
    static int meta_ready;
    if (!meta_ready) {
        char *argv[] = {"fuzz_emnist_parts", NULL};
        io_meta_init(&meta, 1, argv);
        meta_ready = 1;
    }
    const char *paths[3] = {pe, pn, pl};
    for (int i = 0; i < 3; i++) {
        io_csv *csv = io_csv_open(paths[i], header);
        if (nl && size > hlen + 1) fwrite(nl + 1, 1, size - hlen - 1, io_csv_stream(csv));
        io_csv_commit(csv, &meta);
    }
    free(header);
    volatile double sink = 0;
    char err[512];
    ee_eval e;
    if (ee_eval_read(&c, "aux1", 0, &e, err, sizeof err) == 0) {
        if (memchr(e.model, 0, sizeof e.model) == NULL) abort();   /* the name is a terminated string */
        for (int i = 0; i < 10; i++) sink += e.probs[i] + (double)e.counts[i];
    }
    if (ee_eval_read(&c, "b1", 64, &e, err, sizeof err) == 0) sink += e.bpd_paper + e.nfe;
    ee_fusion f;
    if (ee_fusion_read(&c, 64, &f, err, sizeof err) == 0)
        for (int m = 0; m < EE_NCAL; m++)
            for (int i = 0; i < EE_K; i++) sink += f.lambda[m][i];
    free(pe);
    free(pn);
    free(pl);
    (void)sink;
    return 0;
}
