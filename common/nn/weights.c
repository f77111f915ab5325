/* nn/weights: named weight views over memory-mapped safetensors files, sharded diffusers files, and renaming
 * maps for single-file checkpoints (see weights.h). */
#include "weights.h"
#include "json.h"
#include "log.h"
#include "mem.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char *name;
    nn_tensor t;
    int file;
} weights_entry;

struct nn_weights {
    safetensors **files;
    char **paths;
    int nfiles;
    weights_entry *e;
    size_t n, cap;
    int sorted;
    size_t skipped;
    char *label;     /* the first file or index added: names the store in 'missing' messages */
};

nn_weights *nn_weights_alloc(void) { return mem_new(nn_weights, 1); }

void nn_weights_free(nn_weights *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->e[i].name);
        if (w->e[i].t.owned) nn_tensor_free(&w->e[i].t);   /* replaced by nn_weights_replace */
    }
    for (int i = 0; i < w->nfiles; i++) {
        if (w->files[i]) safetensors_close(w->files[i]);
        free(w->paths[i]);
    }
    free(w->label);
    free(w->e);
    free(w->files);
    free(w->paths);
    free(w);
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const weights_entry *)a)->name, ((const weights_entry *)b)->name);
}

/* Sorted on demand: adding is rare, lookups are many. Duplicates are caught when sorting. */
static int weights_sort(nn_weights *w, char *err, size_t errlen)
{
    if (w->sorted) return 0;
    qsort(w->e, w->n, sizeof *w->e, entry_cmp);
    w->sorted = 1;
    for (size_t i = 1; i < w->n; i++)
        if (!strcmp(w->e[i - 1].name, w->e[i].name)) {
            snprintf(err, errlen, "%s: tensor '%s': present twice (also in %s)", w->paths[w->e[i].file],
                     w->e[i].name, w->paths[w->e[i - 1].file]);
            return -1;
        }
    return 0;
}

static const weights_entry *weights_lookup(const nn_weights *w, const char *prefix, const char *name)
{
    char full[1024];
    if (prefix && *prefix) {
        snprintf(full, sizeof full, "%s%s", prefix, name);
        name = full;
    }
    if (!w->sorted) {   /* after nn_weights_add_tensor or a failed add: a linear scan is still right */
        for (size_t i = 0; i < w->n; i++)
            if (!strcmp(w->e[i].name, name)) return &w->e[i];
        return NULL;
    }
    size_t lo = 0, hi = w->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(w->e[mid].name, name);
        if (c == 0) return &w->e[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

int nn_weights_add_file(nn_weights *w, const char *path, nn_weights_rename_fn rename, void *ctx, char *err,
                        size_t errlen)
{
    safetensors *st = safetensors_open(path, err, errlen);
    if (!st) return -1;
    if (!w->label) w->label = mem_strdup(path);
    w->files = mem_realloc(w->files, (size_t)(w->nfiles + 1) * sizeof *w->files);
    w->paths = mem_realloc(w->paths, (size_t)(w->nfiles + 1) * sizeof *w->paths);
    int fi = w->nfiles++;
    w->files[fi] = st;
    w->paths[fi] = mem_strdup(path);
    size_t nt = safetensors_count(st);
    for (size_t i = 0; i < nt; i++) {
        const safetensors_tensor *t = safetensors_at(st, i);
        if (t->dtype != SAFETENSORS_F32 && t->dtype != SAFETENSORS_F16 && t->dtype != SAFETENSORS_BF16) {
            w->skipped++;
            continue;
        }
        char newname[1024];
        const char *keep = t->name;
        if (rename) {
            int r = rename(t->name, newname, sizeof newname, ctx);
            if (r < 0) {
                snprintf(err, errlen, "%s: tensor '%s': %s", path, t->name, newname);
                return -1;
            }
            if (r == 0) continue;
            keep = newname;
        }
        nn_tensor v;
        if (nn_tensor_from_safetensors(&v, t, path, err, errlen)) return -1;
        if (w->n == w->cap) {
            w->cap = w->cap ? 2 * w->cap : 256;
            w->e = mem_realloc(w->e, w->cap * sizeof *w->e);
        }
        w->e[w->n++] = (weights_entry){.name = mem_strdup(keep), .t = v, .file = fi};
    }
    w->sorted = 0;
    return weights_sort(w, err, errlen);
}

int nn_weights_add_tensor(nn_weights *w, const char *name, const nn_tensor *t, const char *label, char *err,
                          size_t errlen)
{
    if (!label) label = "memory";
    int fi = -1;
    for (int i = 0; i < w->nfiles && fi < 0; i++)
        if (!w->files[i] && !strcmp(w->paths[i], label)) fi = i;
    if (fi < 0) {   /* a source without a file: files[fi] NULL, paths[fi] the label */
        w->files = mem_realloc(w->files, (size_t)(w->nfiles + 1) * sizeof *w->files);
        w->paths = mem_realloc(w->paths, (size_t)(w->nfiles + 1) * sizeof *w->paths);
        fi = w->nfiles++;
        w->files[fi] = NULL;
        w->paths[fi] = mem_strdup(label);
        if (!w->label) w->label = mem_strdup(label);
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 256;
        w->e = mem_realloc(w->e, w->cap * sizeof *w->e);
    }
    const weights_entry *dup = weights_lookup(w, NULL, name);
    if (dup) {
        snprintf(err, errlen, "%s: tensor '%s': present twice (also in %s)", label, name, w->paths[dup->file]);
        return -1;
    }
    nn_tensor v = *t;
    v.owned = 0;
    w->e[w->n++] = (weights_entry){.name = mem_strdup(name), .t = v, .file = fi};
    w->sorted = 0;   /* lookups scan until the next file add sorts (adding many tensors stays O(n) each) */
    return 0;
}

/* Directory part of a path ("a/b/c.json" -> "a/b/"; "c.json" -> ""), into out[len]. */
static void dir_of(const char *path, char *out, size_t len)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path + 1) : 0;
    if (n >= len) n = len - 1;
    memcpy(out, path, n);
    out[n] = 0;
}

int nn_weights_add_index(nn_weights *w, const char *index_path, nn_weights_rename_fn rename, void *ctx, char *err,
                         size_t errlen)
{
    json_doc *doc = json_load(index_path, err, errlen);
    if (!doc) return -1;
    if (!w->label) w->label = mem_strdup(index_path);
    const json_value *map = json_get(json_root(doc), "weight_map");
    if (!map || map->type != JSON_OBJECT || json_len(map) == 0) {
        snprintf(err, errlen, "%s: no \"weight_map\" object of tensor -> shard file", index_path);
        json_free(doc);
        return -1;
    }
    char dir[1024];
    dir_of(index_path, dir, sizeof dir);
    size_t n = json_len(map);
    /* each distinct shard once, in the order the index first names it */
    const char **shards = mem_new(const char *, n);
    size_t nshard = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const json_member *mb = json_member_at(map, i);
        const char *f = mb->value.type == JSON_STRING ? mb->value.u.str.s : NULL;
        if (!f || !*f || strchr(f, '/')) {
            snprintf(err, errlen, "%s: weight_map['%s'] is not a shard file name in this folder", index_path,
                     mb->key);
            rc = -1;
            break;
        }
        size_t k = 0;
        while (k < nshard && strcmp(shards[k], f)) k++;
        if (k == nshard) shards[nshard++] = f;
    }
    int first_file = w->nfiles;
    for (size_t k = 0; k < nshard && !rc; k++) {
        char p[2048];
        snprintf(p, sizeof p, "%s%s", dir, shards[k]);
        rc = nn_weights_add_file(w, p, rename, ctx, err, errlen);
    }
    /* every tensor the index names must be in the shard it names (under its possibly renamed name) */
    for (size_t i = 0; i < n && !rc; i++) {
        const json_member *mb = json_member_at(map, i);
        const char *name = mb->key, *f = mb->value.u.str.s;
        char newname[1024];
        const char *look = name;
        if (rename) {
            int r = rename(name, newname, sizeof newname, ctx);
            if (r == 0) continue;
            if (r > 0) look = newname;
        }
        const weights_entry *e = weights_lookup(w, NULL, look);
        int found = 0;
        if (e && e->file >= first_file) {
            const char *base = strrchr(w->paths[e->file], '/');
            base = base ? base + 1 : w->paths[e->file];
            found = !strcmp(base, f);
        }
        if (!found) {
            int other = e == NULL;
            for (int fi = first_file; other && fi < w->nfiles; fi++)
                other = !w->files[fi] || safetensors_find(w->files[fi], name) == NULL;
            if (other) {   /* not even stored under another dtype */
                snprintf(err, errlen, "%s: tensor '%s': listed in the index but not found in shard %s", index_path,
                         name, f);
                rc = -1;
            } else if (e) {
                snprintf(err, errlen, "%s: tensor '%s': the index names shard %s, it is in %s", index_path, name,
                         f, w->paths[e->file]);
                rc = -1;
            }
        }
    }
    free(shards);
    json_free(doc);
    return rc;
}

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

int nn_weights_add_diffusers(nn_weights *w, const char *dir, const char *base, const char *variant,
                             nn_weights_rename_fn rename, void *ctx, char *err, size_t errlen)
{
    char single[2048], index[2100];
    if (variant && *variant) snprintf(single, sizeof single, "%s/%s.%s.safetensors", dir, base, variant);
    else snprintf(single, sizeof single, "%s/%s.safetensors", dir, base);
    snprintf(index, sizeof index, "%s.index.json", single);
    if (file_exists(single)) return nn_weights_add_file(w, single, rename, ctx, err, errlen);
    if (file_exists(index)) return nn_weights_add_index(w, index, rename, ctx, err, errlen);
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) snprintf(err, errlen, "%s: no such folder", dir);
    else snprintf(err, errlen, "%s: neither this file nor %s.index.json exists", single, single);
    return -1;
}

size_t nn_weights_count(const nn_weights *w) { return w->n; }
const char *nn_weights_name_at(const nn_weights *w, size_t i) { return i < w->n ? w->e[i].name : NULL; }
const nn_tensor *nn_weights_tensor_at(const nn_weights *w, size_t i) { return i < w->n ? &w->e[i].t : NULL; }
size_t nn_weights_skipped(const nn_weights *w) { return w->skipped; }

const char *nn_weights_file_of(const nn_weights *w, const char *prefix, const char *name)
{
    const weights_entry *e = weights_lookup(w, prefix, name);
    if (e) return w->paths[e->file];
    return w->label ? w->label : "weights";
}

const nn_tensor *nn_weights_find(const nn_weights *w, const char *prefix, const char *name)
{
    const weights_entry *e = weights_lookup(w, prefix, name);
    return e ? &e->t : NULL;
}

const nn_tensor *nn_weights_get(const nn_weights *w, const char *prefix, const char *name, int ndim,
                                const int64_t *shape, char *err, size_t errlen)
{
    const weights_entry *e = weights_lookup(w, prefix, name);
    const char *pre = prefix ? prefix : "";
    if (!e) {
        snprintf(err, errlen, "%s: tensor '%s%s': missing", nn_weights_file_of(w, NULL, ""), pre, name);
        return NULL;
    }
    if (!nn_tensor_shape_is(&e->t, ndim, shape)) {
        char got[128], want[128];
        nn_tensor want_t = nn_tensor_view(NULL, NN_F32, DEVICE_CPU, ndim, shape);
        snprintf(err, errlen, "%s: tensor '%s%s': shape %s, expected %s", w->paths[e->file], pre, name,
                 nn_tensor_shape_str(&e->t, got, sizeof got), nn_tensor_shape_str(&want_t, want, sizeof want));
        return NULL;
    }
    return &e->t;
}

int nn_weights_replace(nn_weights *w, const char *prefix, const char *name, nn_tensor *t, char *err, size_t errlen)
{
    weights_entry *e = (weights_entry *)weights_lookup(w, prefix, name);
    char shp[2][96];
    if (!e) {
        log_errf(err, errlen, w->label ? w->label : "weights", "tensor '%s%s': missing (cannot replace it)",
                 prefix ? prefix : "", name);
        return -1;
    }
    if (!nn_tensor_shape_is(&e->t, t->ndim, t->shape)) {
        log_errf(err, errlen, w->label ? w->label : "weights", "tensor '%s%s': replacement of shape %s, stored %s",
                 prefix ? prefix : "", name, nn_tensor_shape_str(t, shp[0], sizeof shp[0]),
                 nn_tensor_shape_str(&e->t, shp[1], sizeof shp[1]));
        return -1;
    }
    if (e->t.owned) nn_tensor_free(&e->t);
    e->t = *t;
    memset(t, 0, sizeof *t);
    return 0;
}
