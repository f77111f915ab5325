/* clip_fraction: the heterogeneity metric of the SDXL experiment (paper §5.2, App. H; issue 10 item 2) as a
 * command: CLIP zero-shot scores 100 cos(image, prompt) of a list of PNG images, and per (method, lambda) the
 * fraction of images nearer the first prompt of each pair with a binomial interval (common/clip_metric.h). The
 * experiment runner calls the same library functions in-process; this binary serves a CSV of images made by any
 * tool (ours, the authors' scripts, a folder of someone's images). */
#include "clip_metric.h"
#include "cli.h"
#include "io.h"
#include "log.h"
#include "mem.h"
#include <getopt.h>
#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: clip_fraction --model PATH --images CSV [--out DIR] [options]\n"
    "The CLIP heterogeneity metric of the paper's SDXL experiment (§5.2, App. H): for every image and prompt pair,\n"
    "100 cos(CLIP image embedding, CLIP text embedding) of both prompts; per (method, lambda) and pair, the\n"
    "fraction of images nearer the first prompt (first score strictly larger) with a binomial interval.\n"
    "  --model PATH        a transformers CLIPModel folder (config.json + model.safetensors, as\n"
    "                      openai/clip-vit-base-patch32 ships it), or one .safetensors file in transformers or\n"
    "                      open_clip names (sizes from the shapes)\n"
    "  --tokenizer PATH    a tokenizer folder (vocab.json + merges.txt) or open_clip's bpe_simple_vocab_16e6.txt.gz\n"
    "                      (default: the model folder, which the Hugging Face download includes)\n"
    "  --images CSV        one row per image; columns by header name: method and file (required), lambda (or w)\n"
    "                      and seed (optional; others ignored); a relative file is relative to the CSV's folder\n"
    "  --pair NAME=A|B     a prompt pair, repeatable (default the paper's two: gender=\"a photo of a female\n"
    "                      scientist|a photo of a male scientist\", ethnicity=\"a photo of an East Asian\n"
    "                      scientist|a photo of a White scientist\")\n"
    "  --ci METHOD         clopper-pearson (default; exact, conservative) | wilson\n"
    "  --level X           interval level (default 0.95)\n"
    "  --act A             quick_gelu (default: OpenAI's CLIP) | gelu (open_clip's own trainings): for a file\n"
    "                      without config.json\n"
    "  --text-heads N, --vision-heads N   head counts for a file without config.json (default width / 64)\n"
    "  --batch N           images per forward pass (default 32)\n"
    "  --compare FILE      the paper's fractions (results/paper/sdxl_clip.csv: pair,model,weight,fraction_first,n):\n"
    "                      writes DIR/clip_compare.csv, each paper row beside ours where our method equals its\n"
    "                      model and our lambda its weight (numerically; both empty match)\n"
    "  --out DIR           output folder (default results/sdxl)\n"
    "  --help              this text\n"
    "Writes DIR/clip_scores.csv (method, lambda, seed, file, pair, score_first, score_second, nearer_first) and\n"
    "DIR/clip_fractions.csv (method, lambda, pair, prompt_first, prompt_second, n, k, fraction, ci_lo, ci_hi, ci,\n"
    "level), each with a .meta file; all appear only when every image was scored.\n";

#define MAX_PAIRS 16

typedef struct {
    char *method, *lambda, *seed, *file, *path;
} row;

/* one CSV line into fields (RFC 4180 quotes); returns the count, or -1 on an unterminated quote */
static int split_csv(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    for (;;) {
        if (n == max) return n + 1;
        char *out = p;
        f[n++] = out;
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p) return -1;
                if (*p == '"' && p[1] == '"') {
                    *out++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *out++ = *p++;
                }
            }
            if (*p && *p != ',') return -1;
        } else {
            while (*p && *p != ',') *out++ = *p++;
        }
        if (!*p) {
            *out = '\0';
            return n;
        }
        *out = '\0';
        p++;
    }
}

static row *read_images(const char *csv, size_t *nrows)
{
    FILE *f = fopen(csv, "r");
    if (!f) log_die("--images: cannot open '%s'", csv);
    char *line = NULL, *fld[64];
    size_t cap = 0, n = 0, rcap = 0;
    row *rows = NULL;
    int col_m = -1, col_f = -1, col_l = -1, col_s = -1, ncol = 0;
    long lineno = 0;
    const char *slash = strrchr(csv, '/');
    const size_t dirlen = slash ? (size_t)(slash - csv) : 0;
    while (getline(&line, &cap, f) != -1) {
        lineno++;
        int k = split_csv(line, fld, 64);
        if (k < 0 || k > 64) log_die("%s:%ld: malformed CSV line (quotes or more than 64 fields)", csv, lineno);
        if (lineno == 1) {
            ncol = k;
            for (int i = 0; i < k; i++) {
                if (!strcmp(fld[i], "method")) col_m = i;
                else if (!strcmp(fld[i], "file")) col_f = i;
                else if (!strcmp(fld[i], "lambda") || (!strcmp(fld[i], "w") && col_l < 0)) col_l = i;
                else if (!strcmp(fld[i], "seed")) col_s = i;
            }
            if (col_m < 0 || col_f < 0)
                log_die("%s:1: the header needs the columns 'method' and 'file' (has: %s)", csv, line);
            continue;
        }
        if (k == 1 && !fld[0][0]) continue;   /* blank line */
        if (k != ncol) log_die("%s:%ld: %d fields, the header has %d", csv, lineno, k, ncol);
        if (!fld[col_m][0] || !fld[col_f][0]) log_die("%s:%ld: empty method or file", csv, lineno);
        if (n == rcap) rows = realloc(rows, (rcap = rcap ? 2 * rcap : 64) * sizeof *rows);
        LOG_CHECK(rows, "out of memory");
        row *r = &rows[n++];
        r->method = mem_strdup(fld[col_m]);
        r->lambda = mem_strdup(col_l >= 0 ? fld[col_l] : "");
        r->seed = mem_strdup(col_s >= 0 ? fld[col_s] : "");
        r->file = mem_strdup(fld[col_f]);
        if (r->file[0] == '/' || !dirlen) {
            r->path = mem_strdup(r->file);
        } else {
            size_t len = dirlen + strlen(r->file) + 2;
            r->path = mem_alloc(len);
            snprintf(r->path, len, "%.*s/%s", (int)dirlen, csv, r->file);
        }
    }
    free(line);
    fclose(f);
    if (lineno == 0) log_die("%s: empty file (a header with method and file is needed)", csv);
    if (n == 0) log_die("%s: no image rows", csv);
    *nrows = n;
    return rows;
}

typedef struct {
    char *pair, *model, *weight;
    double fraction;
    long n;
} paper_row;

/* the paper's fractions file (pair,model,weight,fraction_first,n); dies naming the file and line */
static paper_row *read_paper(const char *csv, size_t *nrows)
{
    FILE *f = fopen(csv, "r");
    if (!f) log_die("--compare: cannot open '%s'", csv);
    char *line = NULL, *fld[8];
    size_t cap = 0, n = 0;
    paper_row *rows = NULL;
    long lineno = 0;
    while (getline(&line, &cap, f) != -1) {
        lineno++;
        int k = split_csv(line, fld, 8);
        if (lineno == 1) {
            if (k != 5 || strcmp(fld[0], "pair") || strcmp(fld[1], "model") || strcmp(fld[2], "weight") ||
                strcmp(fld[3], "fraction_first") || strcmp(fld[4], "n"))
                log_die("%s:1: the header must be pair,model,weight,fraction_first,n", csv);
            continue;
        }
        if (k == 1 && !fld[0][0]) continue;
        if (k != 5) log_die("%s:%ld: %d fields, expected 5", csv, lineno, k);
        char *e1, *e2;
        double fr = strtod(fld[3], &e1);
        long nn = strtol(fld[4], &e2, 10);
        if (!fld[3][0] || *e1 || !(fr >= 0 && fr <= 1) || !fld[4][0] || *e2 || nn < 1)
            log_die("%s:%ld: fraction '%s' or n '%s' is not a number in range", csv, lineno, fld[3], fld[4]);
        rows = realloc(rows, (n + 1) * sizeof *rows);
        LOG_CHECK(rows, "out of memory");
        rows[n].pair = mem_strdup(fld[0]), rows[n].model = mem_strdup(fld[1]), rows[n].weight = mem_strdup(fld[2]);
        rows[n].fraction = fr, rows[n].n = nn;
        n++;
    }
    free(line);
    fclose(f);
    if (n == 0) log_die("%s: no rows", csv);
    *nrows = n;
    return rows;
}

/* lambda strings equal: both empty, or both numbers of the same value, or the same text */
static int same_weight(const char *a, const char *b)
{
    if (!*a || !*b) return !*a && !*b;
    char *ea, *eb;
    double x = strtod(a, &ea), y = strtod(b, &eb);
    if (!*ea && !*eb) return x == y;
    return !strcmp(a, b);
}

typedef struct {
    size_t first;    /* row index of the group's first image */
    int pair;
    long n, k;
    double lo, hi;
} group;

/* a CSV field, quoted when it needs to be */
static void put_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int main(int argc, char **argv)
{
    log_set_prog(argv[0]);
    gsl_set_error_handler_off();
    static const struct option lo[] = {{"help", no_argument, 0, 'h'},          {"model", required_argument, 0, 'm'},
                                       {"tokenizer", required_argument, 0, 't'}, {"images", required_argument, 0, 'i'},
                                       {"pair", required_argument, 0, 'p'},     {"ci", required_argument, 0, 'c'},
                                       {"level", required_argument, 0, 'l'},    {"act", required_argument, 0, 'a'},
                                       {"text-heads", required_argument, 0, 'T'},
                                       {"vision-heads", required_argument, 0, 'V'},
                                       {"batch", required_argument, 0, 'b'},    {"out", required_argument, 0, 'o'},
                                       {"compare", required_argument, 0, 'C'}, {0, 0, 0, 0}};
    static const char *const ci_names[] = {"clopper-pearson", "wilson", NULL};
    static const char *const act_names[] = {"quick_gelu", "gelu", NULL};
    const char *model_path = NULL, *tok_path = NULL, *images = NULL, *out = "results/sdxl", *compare = NULL;
    char *pair_name[MAX_PAIRS], *prompts[2 * MAX_PAIRS];
    int npairs = 0, batch = 32;
    double level = 0.95;
    clip_ci_method ci = CLIP_CI_CLOPPER_PEARSON;
    clip_model_opts mo = {CLIP_ACT_QUICK_GELU, 0, 0};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(usage, stdout); return 0;
        case 'm': model_path = optarg; break;
        case 't': tok_path = optarg; break;
        case 'i': images = optarg; break;
        case 'p': {
            if (npairs == MAX_PAIRS) log_die("--pair: at most %d pairs", MAX_PAIRS);
            const char *eq = strchr(optarg, '='), *bar = eq ? strchr(eq + 1, '|') : NULL;
            if (!eq || !bar || eq == optarg || bar == eq + 1 || !bar[1] || strchr(bar + 1, '|'))
                log_die("--pair: '%s' is not NAME=FIRST PROMPT|SECOND PROMPT", optarg);
            pair_name[npairs] = strndup(optarg, (size_t)(eq - optarg));
            prompts[2 * npairs] = strndup(eq + 1, (size_t)(bar - eq - 1));
            prompts[2 * npairs + 1] = mem_strdup(bar + 1);
            LOG_CHECK(pair_name[npairs] && prompts[2 * npairs], "out of memory");
            npairs++;
            break;
        }
        case 'c': ci = (clip_ci_method)cli_choice("--ci", optarg, ci_names); break;
        case 'l': level = cli_double_range("--level", optarg, 1e-6, 1 - 1e-9); break;
        case 'a': mo.act = (clip_act)cli_choice("--act", optarg, act_names); break;
        case 'T': mo.text_heads = (int)cli_long("--text-heads", optarg, 1, 1024); break;
        case 'V': mo.vision_heads = (int)cli_long("--vision-heads", optarg, 1, 1024); break;
        case 'b': batch = (int)cli_long("--batch", optarg, 1, 4096); break;
        case 'o': out = optarg; break;
        case 'C': compare = optarg; break;
        case ':': log_die("%s needs a value (see --help)", argv[optind - 1]);
        default: cli_bad_option(argv[optind - 1]);
        }
    }
    if (optind < argc) log_die("unexpected argument '%s' (see --help)", argv[optind]);
    if (!model_path) log_die("--model is required (see --help)");
    if (!images) log_die("--images is required (see --help)");
    if (npairs == 0) {
        for (int p = 0; p < CLIP_METRIC_NPAIRS_PAPER; p++) {
            pair_name[p] = mem_strdup(clip_metric_paper_pair_names[p]);
            prompts[2 * p] = mem_strdup(clip_metric_paper_pairs[p][0]);
            prompts[2 * p + 1] = mem_strdup(clip_metric_paper_pairs[p][1]);
        }
        npairs = CLIP_METRIC_NPAIRS_PAPER;
    }
    for (int p = 0; p < npairs; p++)
        for (int q = 0; q < p; q++)
            if (!strcmp(pair_name[p], pair_name[q])) log_die("--pair: the name '%s' is given twice", pair_name[p]);

    io_meta meta;
    io_meta_init(&meta, argc, argv);
    size_t n;
    row *rows = read_images(images, &n);
    size_t npaper = 0;
    paper_row *paper = compare ? read_paper(compare, &npaper) : NULL;
    cli_output_dir("--out", out);
    char err[1024];
    clip_model *model = clip_model_load(model_path, &mo, err, sizeof err);
    if (!model) log_die("--model: %s", err);
    if (!tok_path) tok_path = model_path;
    size_t tl = strlen(tok_path);
    clip_tokenizer *tok = tl > 3 && (!strcmp(tok_path + tl - 3, ".gz") || !strcmp(tok_path + tl - 4, ".txt"))
                              ? clip_tokenizer_load_bpe(tok_path, err, sizeof err)
                              : clip_tokenizer_load_dir(tok_path, err, sizeof err);
    if (!tok) log_die("--tokenizer: %s", err);
    clip_metric *cm = clip_metric_alloc(model, tok, (const char *const *)prompts, 2 * npairs, err, sizeof err);
    if (!cm) log_die("%s", err);

    const char **paths = mem_alloc(n * sizeof(char *));
    for (size_t i = 0; i < n; i++) paths[i] = rows[i].path;
    double *sc = mem_alloc(n * 2 * (size_t)npairs * sizeof(double));
    log_info("scoring %zu images with %s (%s names, image %d, embedding %d)", n, clip_model_weights_path(model),
             clip_model_naming(model), clip_model_image_size(model), clip_model_embed_dim(model));
    double t0 = log_now();
    if (clip_metric_score_files(cm, paths, n, batch, sc, err, sizeof err)) log_die("%s", err);
    const double secs = log_now() - t0;
    for (size_t i = 0; i < n * 2 * (size_t)npairs; i++)
        if (!isfinite(sc[i])) log_die("%s: a non-finite CLIP score (zero embedding?)", rows[i / (2 * npairs)].path);

    io_meta_set(&meta, "device", "cpu");
    io_meta_set(&meta, "model", "%s (%s names)", clip_model_weights_path(model), clip_model_naming(model));
    io_meta_set(&meta, "tokenizer", "%s", clip_tokenizer_label(tok));
    io_meta_set(&meta, "image_size", "%d", clip_model_image_size(model));
    io_meta_set(&meta, "logit_scale_exp", "%.6g (the scores use 100, the paper's factor)",
                clip_model_logit_scale(model));
    io_meta_set(&meta, "preprocessing", "open_clip eval: Resize(shortest side, PIL bicubic a=-0.5 antialiased), "
                                        "CenterCrop, RGB, OpenAI mean/std");
    io_meta_set(&meta, "ci", "%s", clip_metric_ci_name(ci));
    io_meta_set(&meta, "level", "%g", level);
    io_meta_set(&meta, "images", "%s (%zu rows)", images, n);
    io_meta_set(&meta, "scoring_seconds", "%.2f", secs);
    for (int p = 0; p < npairs; p++) io_meta_set(&meta, pair_name[p], "%s | %s", prompts[2 * p], prompts[2 * p + 1]);

    char *spath = io_path(out, "clip_scores.csv"), *fpath = io_path(out, "clip_fractions.csv");
    io_csv *cs = io_csv_open(spath, "method,lambda,seed,file,pair,score_first,score_second,nearer_first");
    FILE *f = io_csv_stream(cs);
    for (size_t i = 0; i < n; i++)
        for (int p = 0; p < npairs; p++) {
            const double a = sc[i * 2 * npairs + 2 * p], b = sc[i * 2 * npairs + 2 * p + 1];
            put_field(f, rows[i].method), fputc(',', f), put_field(f, rows[i].lambda), fputc(',', f);
            put_field(f, rows[i].seed), fputc(',', f), put_field(f, rows[i].file), fputc(',', f);
            put_field(f, pair_name[p]);
            fprintf(f, ",%.6f,%.6f,%d\n", a, b, a > b);
        }
    io_csv *cf = io_csv_open(fpath, "method,lambda,pair,prompt_first,prompt_second,n,k,fraction,ci_lo,ci_hi,ci,level");
    f = io_csv_stream(cf);
    /* groups in order of first appearance */
    char *done = mem_calloc(n, 1);
    double *sub = mem_alloc(n * 2 * (size_t)npairs * sizeof(double));
    group *g = mem_alloc(n * (size_t)npairs * sizeof *g);
    size_t ng = 0;
    for (size_t i = 0; i < n; i++) {
        if (done[i]) continue;
        size_t m = 0;
        for (size_t j = i; j < n; j++)
            if (!done[j] && !strcmp(rows[j].method, rows[i].method) && !strcmp(rows[j].lambda, rows[i].lambda)) {
                done[j] = 1;
                memcpy(sub + m * 2 * npairs, sc + j * 2 * npairs, 2 * (size_t)npairs * sizeof(double));
                m++;
            }
        for (int p = 0; p < npairs; p++) {
            group *q = &g[ng++];
            q->first = i, q->pair = p, q->n = (long)m;
            q->k = clip_metric_count_first(sub, m, 2 * npairs, p);
            if (clip_metric_ci(q->k, q->n, level, ci, &q->lo, &q->hi))
                LOG_FATAL("interval of %ld / %ld failed", q->k, q->n);
            put_field(f, rows[i].method), fputc(',', f), put_field(f, rows[i].lambda), fputc(',', f);
            put_field(f, pair_name[p]), fputc(',', f), put_field(f, prompts[2 * p]), fputc(',', f);
            put_field(f, prompts[2 * p + 1]);
            fprintf(f, ",%ld,%ld,%.6f,%.6f,%.6f,%s,%g\n", q->n, q->k, (double)q->k / q->n, q->lo, q->hi,
                    clip_metric_ci_name(ci), level);
        }
    }
    io_csv *cc = NULL;
    char *cpath = NULL;
    if (paper) {
        cpath = io_path(out, "clip_compare.csv");
        cc = io_csv_open(cpath, "pair,model,weight,paper_fraction,paper_n,ours_fraction,ours_n,ours_ci_lo,ours_ci_hi,"
                                "paper_inside_ours_ci");
        f = io_csv_stream(cc);
        for (size_t r = 0; r < npaper; r++) {
            const group *q = NULL;
            for (size_t j = 0; j < ng && !q; j++)
                if (!strcmp(pair_name[g[j].pair], paper[r].pair) && !strcmp(rows[g[j].first].method, paper[r].model) &&
                    same_weight(rows[g[j].first].lambda, paper[r].weight))
                    q = &g[j];
            put_field(f, paper[r].pair), fputc(',', f), put_field(f, paper[r].model), fputc(',', f);
            put_field(f, paper[r].weight);
            fprintf(f, ",%.6f,%ld", paper[r].fraction, paper[r].n);
            if (q)
                fprintf(f, ",%.6f,%ld,%.6f,%.6f,%d\n", (double)q->k / q->n, q->n, q->lo, q->hi,
                        paper[r].fraction >= q->lo && paper[r].fraction <= q->hi);
            else
                fputs(",,,,,\n", f);   /* no images of that model here */
        }
        io_meta_set(&meta, "compare", "%s (the paper's fractions, typed from REFERENCE.md)", compare);
    }
    io_csv_commit(cs, &meta);
    io_csv_commit(cf, &meta);
    if (cc) io_csv_commit(cc, &meta);
    log_info("wrote %s and %s (%zu images, %.1f s)", spath, fpath, n, secs);

    free(done), free(sub), free(g), free(spath), free(fpath), free(cpath), free(paths), free(sc);
    for (size_t r = 0; r < npaper; r++) free(paper[r].pair), free(paper[r].model), free(paper[r].weight);
    free(paper);
    for (size_t i = 0; i < n; i++) free(rows[i].method), free(rows[i].lambda), free(rows[i].seed), free(rows[i].file),
                                   free(rows[i].path);
    free(rows);
    for (int p = 0; p < npairs; p++) free(pair_name[p]), free(prompts[2 * p]), free(prompts[2 * p + 1]);
    io_meta_free(&meta);
    clip_metric_free(cm);
    clip_tokenizer_free(tok);
    clip_model_free(model);
    return 0;
}
