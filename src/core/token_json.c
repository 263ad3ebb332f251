/* token_json.c — edits to a token's stored JSON that must not cost a parse
 * and re-serialization on the hot path. */
#include "core/token_json.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Where the top-level payloadSignatures array closes in the stored JSON, or
 * NULL. The top-level key follows "payload" (tokend writes tokens in that
 * order), so the last occurrence is the real one even if a payload object
 * uses the same key; the scan skips strings, whose quotes are always escaped. */
static const char *signatures_end(const char *json)
{
    static const char KEY[] = "\"payloadSignatures\":[";
    const char *at = NULL;
    for (const char *p = strstr(json, KEY); p; p = strstr(p + 1, KEY))
        at = p;
    if (!at) return NULL;
    int depth = 0;
    bool in_str = false;
    for (const char *p = at + sizeof KEY - 2; *p; p++) {
        if (in_str) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '"')
                in_str = false;
        } else if (*p == '"') {
            in_str = true;
        } else if (*p == '[' || *p == '{') {
            depth++;
        } else if (*p == ']' || *p == '}') {
            if (--depth == 0) return *p == ']' ? p : NULL;
        }
    }
    return NULL;
}

/* The token's JSON with one more payload signature, spliced in as text: the
 * stored JSON is not parsed and re-serialized on the hot path. */
char *td_token_json_add_signature(const char *json, const char *action, json_t *sig)
{
    json_t *entry = json_pack("{s:s, s:O}", "action", action, "signature", sig);
    char *text = json_dumps(entry, JSON_COMPACT);
    json_decref(entry);
    const char *end = signatures_end(json);
    if (!text || !end) {
        free(text);
        return NULL;
    }
    bool empty = end[-1] == '[';
    size_t head = (size_t)(end - json), n = strlen(text), tail = strlen(end);
    char *out = malloc(head + 1 + n + tail + 1);
    if (out) {
        memcpy(out, json, head);
        size_t o = head;
        if (!empty) out[o++] = ',';
        memcpy(out + o, text, n);
        memcpy(out + o + n, end, tail + 1);
    }
    free(text);
    return out;
}
