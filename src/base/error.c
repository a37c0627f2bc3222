#include "llmos/base.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

lm_status lm_error_set(lm_error *err, lm_status code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

lm_status lm_error_prefix(lm_error *err, lm_status status, const char *fmt, ...) {
    if (!err) return status;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Shift the old message right and put the prefix in front, truncating. */
    size_t cap = sizeof err->message, plen = strlen(prefix), olen = strlen(err->message);
    if (plen > cap - 1) plen = cap - 1;
    if (olen > cap - 1 - plen) olen = cap - 1 - plen;
    memmove(err->message + plen, err->message, olen);
    memcpy(err->message, prefix, plen);
    err->message[plen + olen] = '\0';
    return status;
}

void lm_error_clear(lm_error *err) {
    if (err) {
        err->code = LM_OK;
        err->message[0] = '\0';
    }
}

const char *lm_status_name(lm_status status) {
    switch (status) {
    case LM_OK: return "ok";
    case LM_ERR_ARG: return "invalid argument";
    case LM_ERR_IO: return "i/o error";
    case LM_ERR_FORMAT: return "format error";
    case LM_ERR_UNSUPPORTED: return "unsupported";
    case LM_ERR_NOMEM: return "out of memory";
    case LM_ERR_LIMIT: return "limit exceeded";
    }
    return "unknown status";
}
