/* token_json.h — text-level edits of a token's stored JSON (the Token object
 * exactly as served). */
#ifndef TD_TOKEN_JSON_H
#define TD_TOKEN_JSON_H

#include <jansson.h>

/* Returns a malloc'd copy of json with {"action": action, "signature": sig}
 * appended to the top-level payloadSignatures array, or NULL if json has no
 * such array (or on allocation failure). The top-level key must follow
 * "payload", as tokend writes tokens. */
char *td_token_json_add_signature(const char *json, const char *action, json_t *sig);

#endif
