/* canonical.h — canonical JSON of a token payload, the bytes that are signed.
 * Rules (docs/signatures.md): object keys sorted by their UTF-8 bytes, no
 * whitespace, absent/null fields omitted, strings escaped minimally as jansson
 * does with JSON_COMPACT|JSON_SORT_KEYS|JSON_ENSURE_ASCII off, integers as
 * written. */
#ifndef TD_CANONICAL_H
#define TD_CANONICAL_H

#include <jansson.h>

/* Returns a malloc'd NUL-terminated canonical string of v, or NULL on error.
 * null members of objects are omitted (recursively); empty objects and arrays
 * are kept. The caller frees the result with free(). */
char *td_canonical_json(const json_t *v);

#endif
