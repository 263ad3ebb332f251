/* test_buf.c — the bounded buffer (util/buf.h): growth, its bound to the byte,
 * a failed add that sticks, printf, steal, clear and reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/buf.h"

static void test_grows_and_stays_terminated(void **state)
{
    (void)state;
    td_buf b = td_buf_bounded(0);
    assert_null(b.p);
    for (int i = 0; i < 1000; i++)
        assert_true(td_buf_add(&b, "abc", 3));
    assert_int_equal(b.len, 3000);
    assert_int_equal(b.p[b.len], 0);
    assert_true(b.cap > b.len);
    assert_true(td_buf_add(&b, NULL, 0)); /* an empty add of nothing */
    assert_true(td_buf_ok(&b));
    char *s = td_buf_steal(&b);
    assert_int_equal(strlen(s), 3000);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
    free(s);
}

static void test_bound_to_the_byte(void **state)
{
    (void)state;
    td_buf b = td_buf_bounded(10);
    assert_true(td_buf_add_str(&b, "0123456789")); /* exactly the bound */
    assert_string_equal(b.p, "0123456789");
    assert_false(td_buf_add(&b, "x", 1));
    assert_true(b.too_large);
    assert_false(td_buf_ok(&b));
    /* sticky: a smaller add after a refused one is refused too */
    td_buf_clear(&b);
    assert_false(td_buf_add(&b, "y", 1));
    td_buf_reset(&b);
    assert_true(td_buf_ok(&b));
    assert_int_equal(b.max, 10);
    assert_false(td_buf_add(&b, "01234567890", 11)); /* one past in one add */
    td_buf_reset(&b);
    /* a length that would overflow size_t arithmetic is refused, not wrapped */
    assert_true(td_buf_add_str(&b, "ab"));
    assert_false(td_buf_add(&b, "", SIZE_MAX));
    assert_true(b.too_large);
    td_buf_reset(&b);
    td_buf open = td_buf_bounded(0); /* no bound: the same size is refused as memory */
    assert_true(td_buf_add_str(&open, "ab"));
    assert_false(td_buf_add(&open, "", SIZE_MAX - 1));
    assert_true(open.oom);
    td_buf_reset(&open);
}

static void test_printf(void **state)
{
    (void)state;
    td_buf b = td_buf_bounded(64);
    assert_true(td_buf_printf(&b, "%s=%d;", "a", 1));
    assert_true(td_buf_printf(&b, "%s=%d;", "bb", 22));
    assert_string_equal(b.p, "a=1;bb=22;");
    char big[100];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_false(td_buf_printf(&b, "%s", big));
    assert_true(b.too_large);
    assert_string_equal(b.p, "a=1;bb=22;"); /* a refused add leaves the bytes as they were */
    td_buf_reset(&b);
}

static void test_steal_of_nothing_and_clear(void **state)
{
    (void)state;
    td_buf b = td_buf_bounded(0);
    char *s = td_buf_steal(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
    assert_true(td_buf_add_str(&b, "hello"));
    size_t cap = b.cap;
    td_buf_clear(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.p, "");
    assert_int_equal(b.cap, cap); /* the memory is kept */
    td_buf_reset(&b);
    assert_null(b.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grows_and_stays_terminated),
        cmocka_unit_test(test_bound_to_the_byte),
        cmocka_unit_test(test_printf),
        cmocka_unit_test(test_steal_of_nothing_and_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
