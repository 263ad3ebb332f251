/* sign.h — signing a token payload with a member's tokend-held key. */
#ifndef TD_SIGN_H
#define TD_SIGN_H

#include <jansson.h>

#include "service/service.h"

/* Signs canonical + "." + suffix with the member's newest key of exactly
 * `level`; *sig gets {keyId, memberId, signature} (new reference). */
td_st td_sign_as(td_conn *c, td_svc *svc, const char *member_id, td_level level, const char *canonical,
                 const char *suffix, json_t **sig);
/* The same with the key already read (token_get_signing); a key with no id
 * (the member has none at that level) fails as td_sign_as does. */
td_st td_sign_with(td_svc *svc, const char *member_id, td_level level, const td_key_rec *k, const char *canonical,
                   const char *suffix, json_t **sig);

#endif
