/* canonical.c — canonical JSON of token payloads: the exact bytes that are
 * signed, so every rule here is part of the signature format (docs/signatures.md). */
#include "core/canonical.h"

#include <stdlib.h>

/* Token payloads are a handful of levels deep; the limit only guards the
 * recursion against hostile or cyclic trees built in memory. */
#define TD_CANONICAL_MAX_DEPTH 256

/* Flags that define the canonical form: keys sorted by their UTF-8 bytes
 * (jansson compares them with memcmp), no whitespace, non-ASCII written as
 * raw UTF-8 (no JSON_ENSURE_ASCII), '/' not escaped, scalars allowed at the
 * top level. */
#define TD_CANONICAL_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)

static json_t *strip_nulls(const json_t *v, int depth);

static json_t *strip_object(const json_t *obj, int depth)
{
    json_t *out = json_object();
    if (!out) return NULL;
    /* jansson's iteration API takes a non-const pointer although it does not
     * modify the object; the cast is confined to this loop. */
    json_t *src = (json_t *)obj;
    for (void *it = json_object_iter(src); it; it = json_object_iter_next(src, it)) {
        const json_t *member = json_object_iter_value(it);
        if (json_is_null(member)) continue; /* absent and null must sign the same bytes */
        json_t *copy = strip_nulls(member, depth + 1);
        /* setn keeps keys that contain NUL bytes intact */
        if (!copy || json_object_setn_new(out, json_object_iter_key(it), json_object_iter_key_len(it), copy) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

static json_t *strip_array(const json_t *arr, int depth)
{
    json_t *out = json_array();
    if (!out) return NULL;
    size_t n = json_array_size(arr);
    for (size_t i = 0; i < n; i++) {
        /* null elements stay: dropping them would shift positions */
        json_t *copy = strip_nulls(json_array_get(arr, i), depth + 1);
        if (!copy || json_array_append_new(out, copy) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* Deep copy of v without null object members; NULL if v holds a real number
 * or is too deep. */
static json_t *strip_nulls(const json_t *v, int depth)
{
    if (!v || depth > TD_CANONICAL_MAX_DEPTH) return NULL;
    switch (json_typeof(v)) {
    case JSON_OBJECT: return strip_object(v, depth);
    case JSON_ARRAY: return strip_array(v, depth);
    case JSON_REAL:
        /* Float formatting differs between implementations, so a signature
         * over one could not be reproduced by a verifier in another language;
         * payloads carry amounts as strings instead. */
        return NULL;
    case JSON_STRING:
    case JSON_INTEGER:
    case JSON_TRUE:
    case JSON_FALSE:
    case JSON_NULL: return json_deep_copy(v);
    }
    return NULL;
}

char *td_canonical_json(const json_t *v)
{
    json_t *copy = strip_nulls(v, 0);
    if (!copy) return NULL;
    /* json_dumpb rather than json_dumps: the result must be released with
     * free() even if someone installs custom jansson allocators. */
    char *out = NULL;
    size_t need = json_dumpb(copy, NULL, 0, TD_CANONICAL_FLAGS);
    if (need > 0) {
        out = malloc(need + 1);
        if (out) {
            size_t got = json_dumpb(copy, out, need, TD_CANONICAL_FLAGS);
            if (got != need) {
                free(out);
                out = NULL;
            } else {
                out[need] = '\0';
            }
        }
    }
    json_decref(copy);
    return out;
}
