/* test_token_json.c — the text splice that adds a payload signature to a
 * stored token: same result as parsing and re-serializing, and not fooled by
 * a payload that uses the same key or brackets inside strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/token_json.h"

static json_t *sig(void)
{
    return json_pack("{s:s, s:s, s:s}", "keyId", "k1", "memberId", "m:a:b", "signature", "s1");
}

/* The splice must equal what jansson gives for the edited document. */
static void check(const char *json)
{
    json_t *s = sig();
    char *got = td_token_json_add_signature(json, "CANCELED", s);
    assert_non_null(got);
    json_t *doc = json_loads(json, 0, NULL);
    json_array_append_new(json_object_get(doc, "payloadSignatures"),
                          json_pack("{s:s, s:O}", "action", "CANCELED", "signature", s));
    json_t *parsed = json_loads(got, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(parsed);
    assert_true(json_equal(parsed, doc));
    json_decref(parsed);
    json_decref(doc);
    json_decref(s);
    free(got);
}

static void test_appends_after_existing(void **state)
{
    (void)state;
    check("{\"id\":\"ta:1\",\"payload\":{\"refId\":\"r\"},\"payloadSignatures\":[{\"action\":\"ENDORSED\","
          "\"signature\":{\"keyId\":\"k0\"}}],\"tokenRequestId\":\"rq:1\"}");
}

static void test_appends_to_empty_array(void **state)
{
    (void)state;
    check("{\"id\":\"ta:1\",\"payload\":{},\"payloadSignatures\":[]}");
}

static void test_payload_using_the_same_key_and_brackets_in_strings(void **state)
{
    (void)state;
    check("{\"id\":\"ta:1\",\"payload\":{\"transfer\":{\"instructions\":{\"metadata\":{\"payloadSignatures\":[1]}}},"
          "\"description\":\"]}\\\"payloadSignatures\\\":[\"},\"payloadSignatures\":[{\"action\":\"ENDORSED\","
          "\"signature\":{\"signature\":\"a]b}\\\"c\"}}],\"tokenRequestId\":\"rq:1\"}");
}

static void test_no_signatures_array(void **state)
{
    (void)state;
    json_t *s = sig();
    assert_null(td_token_json_add_signature("{\"id\":\"ta:1\",\"payload\":{}}", "CANCELED", s));
    assert_null(td_token_json_add_signature("{\"payloadSignatures\":{}}", "CANCELED", s));
    json_decref(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appends_after_existing),
        cmocka_unit_test(test_appends_to_empty_array),
        cmocka_unit_test(test_payload_using_the_same_key_and_brackets_in_strings),
        cmocka_unit_test(test_no_signatures_array),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
