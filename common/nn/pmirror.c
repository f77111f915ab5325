/* nn/pmirror: an nn_params record on one backend table (see pmirror.h). */
#include "pmirror.h"
#include "log.h"

static void bind_host(nn_pmirror *d)
{
    nn_params *p = d->p;
    d->data = p->data;
    d->grad = p->grad;
    d->m = p->m;
    d->v = p->v;
    d->ema = p->ema;
    d->keep = p->keep;
}

void nn_pmirror_init(nn_pmirror *d, nn_params *p)
{
    d->be = nn_backend_cpu();
    d->p = p;
    bind_host(d);
}

void nn_pmirror_train(nn_pmirror *d)
{
    const int had = nn_params_has_train(d->p);
    nn_params *p = nn_params_train(d->p);
    if (d->be->host) {
        bind_host(d);
        return;
    }
    if (d->grad) return;
    const nn_backend *be = d->be;
    const size_t T = p->total;
    d->grad = be->alloc(T);
    d->m = be->alloc(T);
    d->v = be->alloc(T);
    d->ema = be->alloc(T);
    d->keep = be->alloc(T);
    if (had) {
        be->upload(d->grad, p->grad, T);
        be->upload(d->m, p->m, T);
        be->upload(d->v, p->v, T);
        be->upload(d->ema, p->ema, T);
        if (p->have_keep) be->upload(d->keep, p->keep, T);
    } else {
        be->copy(d->ema, d->data, T);
    }
}

void nn_pmirror_set_device(nn_pmirror *d, device_kind dev)
{
    const nn_backend *be = nn_backend_for(dev);
    if (be == d->be) return;
    LOG_CHECK(d->be->host && !be->host, "nn_pmirror_set_device: only a cpu model moves to a device");
    d->be = be;
    d->data = be->alloc(d->p->total);
    be->upload(d->data, d->p->data, d->p->total);
    d->grad = d->m = d->v = d->ema = d->keep = NULL;
    if (nn_params_has_train(d->p)) nn_pmirror_train(d);
}

void nn_pmirror_free(nn_pmirror *d)
{
    if (!d->be || d->be->host) return;
    d->be->sync();
    float *bufs[6] = {d->data, d->grad, d->m, d->v, d->ema, d->keep};
    for (int i = 0; i < 6; i++) d->be->release(bufs[i]);
    d->data = d->grad = d->m = d->v = d->ema = d->keep = NULL;
}

const float *nn_pmirror_weights(const nn_pmirror *d, int use_ema)
{
    if (d->be->host) return nn_params_weights(d->p, use_ema);
    return use_ema && d->ema ? d->ema : d->data;
}

void nn_pmirror_zero_grad(nn_pmirror *d)
{
    nn_pmirror_train(d);
    d->be->zero(d->grad, d->p->total);
}

void nn_pmirror_copy_ema_to_data(nn_pmirror *d)
{
    if (d->be->host) nn_params_copy_ema_to_data(d->p);
    else if (d->ema) d->be->copy(d->data, d->ema, d->p->total);
}

void nn_pmirror_reset_optim(nn_pmirror *d)
{
    nn_pmirror_train(d);
    const size_t T = d->p->total;
    d->be->zero(d->m, T);
    d->be->zero(d->v, T);
    d->be->copy(d->ema, d->data, T);
    d->p->have_keep = 0;
}

void nn_pmirror_snapshot(nn_pmirror *d, int from_ema)
{
    if (d->be->host) {
        nn_params_snapshot(d->p, from_ema);
        bind_host(d);
        return;
    }
    nn_pmirror_train(d);
    d->be->copy(d->keep, from_ema ? d->ema : d->data, d->p->total);
    d->p->have_keep = 1;
}

int nn_pmirror_restore(nn_pmirror *d)
{
    if (d->be->host) return nn_params_restore(d->p);
    if (!d->keep || !d->p->have_keep) return -1;
    d->be->copy(d->data, d->keep, d->p->total);
    d->be->copy(d->ema, d->keep, d->p->total);
    return 0;
}

void nn_pmirror_to_host(nn_pmirror *d)
{
    if (d->be->host) return;
    nn_params *p = d->p;
    const size_t T = p->total;
    d->be->download(p->data, d->data, T);
    if (d->grad) {
        nn_params_train(p);
        d->be->download(p->grad, d->grad, T);
        d->be->download(p->m, d->m, T);
        d->be->download(p->v, d->v, T);
        d->be->download(p->ema, d->ema, T);
        if (p->have_keep) d->be->download(p->keep, d->keep, T);
    }
}

void nn_pmirror_to_device(nn_pmirror *d)
{
    if (d->be->host) return;
    nn_params *p = d->p;
    const size_t T = p->total;
    d->be->upload(d->data, p->data, T);
    if (nn_params_has_train(p)) {
        nn_pmirror_train(d);
        d->be->upload(d->grad, p->grad, T);
        d->be->upload(d->m, p->m, T);
        d->be->upload(d->v, p->v, T);
        d->be->upload(d->ema, p->ema, T);
        if (p->have_keep) d->be->upload(d->keep, p->keep, T);
    }
}
