/* faces.h — every endpoint handler, by face, and the helpers they share to
 * validate input and hand writes to the service. */
#ifndef TD_FACES_H
#define TD_FACES_H

#include "api/http.h"
#include "service/service.h"

/* operations (ops.c) */
void td_ops_healthz(td_req *r);
void td_ops_readyz(td_req *r);
void td_ops_metrics(td_req *r);

/* Token API (tokenio_tokens.c, tokenio_requests.c, tokenio_keys.c) */
void tokenio_list_tokens(td_req *r);
void tokenio_get_token(td_req *r);
void tokenio_cancel_token(td_req *r);
void tokenio_not_implemented(td_req *r);
void tokenio_store_request(td_req *r);
/* Validates a POST /token-requests body; sets *kind. 0 if valid. */
int tokenio_check_request(json_t *body, td_kind *kind, td_error *e);
void tokenio_get_request(td_req *r);
void tokenio_get_request_result(td_req *r);
void tokenio_authorize_request(td_req *r);
void tokenio_list_keys(td_req *r);
void tokenio_add_key(td_req *r);
void tokenio_get_key(td_req *r);
void tokenio_delete_key(td_req *r);

/* consent pages (consent.c) */
void consent_page(td_req *r);
void consent_decide(td_req *r);
/* Decodes the consent form (decision=approve|reject, accounts=a,b or accountId=a
 * repeated) into cmd; 0 if valid. Pure: the fuzzer drives it directly. */
int consent_parse_form(const char *body, size_t len, td_consent_decide *cmd, td_error *e);

/* admin API (admin.c) */
void admin_create_member(td_req *r);
void admin_create_member_api_key(td_req *r);
void admin_create_issuer(td_req *r);
void admin_create_issuer_api_key(td_req *r);
void admin_set_fault(td_req *r);

/* ---- shared by faces (face_util.c) ---- */

/* Allocates a command of `size` bytes whose first member is a td_write, wired
 * to this request: idempotency key and request hash, the renderer, and the
 * generic completion. Returns NULL after answering the error itself. */
void *td_face_new_write(td_req *r, size_t size, void (*render)(td_write *w));

/* "<prefix><json><suffix>", malloc'd: stored JSON is served without re-parsing. */
char *td_wrap(const char *prefix, const char *json, const char *suffix);
/* A renderer's answer: serializes v (steals the reference). */
void td_write_answer(td_write *w, int status, json_t *v);

/* Checks that every key of obj is in allowed (NULL-terminated). */
int td_json_only(json_t *obj, const char *where, const char *const *allowed, td_error *e);
/* Typed field access: returns 0 and the value, or -1 with e set. A missing
 * optional field returns 0 and NULL/default. */
int td_json_string(json_t *obj, const char *where, const char *key, bool required, size_t maxlen, const char **out,
                   td_error *e);
int td_json_object(json_t *obj, const char *where, const char *key, bool required, json_t **out, td_error *e);

/* Token.io-style ids ("ta:...", "m:...", "rq:..."): [A-Za-z0-9:_-], 3..96. */
bool td_valid_id(const char *s);
/* Checks a path parameter as an id; answers 400 itself when it is not. */
bool td_param_id(td_req *r, int i, const char *name);

#endif
