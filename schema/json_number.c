/* schema/json_number.c — numbers into JSON text without printf on the common
 * path: integers by two digits at a time, doubles as the shortest decimal
 * that reads back as the same value.
 *
 * Doubles: most values in records are integers or have a few decimals (a
 * price, a ratio). For those, the smallest k such that m = round(|d| * 10^k)
 * gives m / 10^k == |d| is found directly: m < 2^53 and 10^k (k <= 22) are
 * exact doubles and IEEE division rounds correctly, so m / 10^k is exactly
 * what strtod makes of the text "m with k decimals" — the text reads back as
 * d. Every other value takes the classic route: %.15g, then %.16g, then
 * %.17g, the first that strtod reads back as d (%.15g strips trailing zeros,
 * and every decimal of 15 digits survives a round trip, so when the shortest
 * form has at most 15 digits %.15g is it). Floats likewise with 10^k <= 10^10,
 * m < 2^24, float division and %.6g .. %.9g with strtof.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/json_internal.h"

static const char digit_pairs[201] = "00010203040506070809"
                                     "10111213141516171819"
                                     "20212223242526272829"
                                     "30313233343536373839"
                                     "40414243444546474849"
                                     "50515253545556575859"
                                     "60616263646566676869"
                                     "70717273747576777879"
                                     "80818283848586878889"
                                     "90919293949596979899";

/* The digits of u, at least min_digits of them (zero-padded), into out. */
static size_t put_u64(uint64_t u, int min_digits, char *out)
{
    char tmp[24];
    int i = 24;
    while (u >= 100) {
        unsigned r = (unsigned)(u % 100);
        u /= 100;
        tmp[--i] = digit_pairs[2 * r + 1];
        tmp[--i] = digit_pairs[2 * r];
    }
    if (u >= 10) {
        tmp[--i] = digit_pairs[2 * u + 1];
        tmp[--i] = digit_pairs[2 * u];
    } else {
        tmp[--i] = (char)('0' + u);
    }
    while (24 - i < min_digits)
        tmp[--i] = '0';
    size_t n = (size_t)(24 - i);
    memcpy(out, tmp + i, n);
    return n;
}

size_t dm_avro_json_format_i64(int64_t v, char *out)
{
    if (v < 0) {
        out[0] = '-';
        return 1 + put_u64(0 - (uint64_t)v, 1, out + 1);
    }
    return put_u64((uint64_t)v, 1, out);
}

static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                             1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* m with k decimals ("12.5", "0.001", "7.0"). */
static size_t put_fixed(uint64_t m, int k, bool neg, char *out)
{
    char *o = out;
    if (neg) *o++ = '-';
    char digits[24];
    size_t n = put_u64(m, k + 1, digits); /* at least one digit before the point */
    size_t whole = n - (size_t)k;
    memcpy(o, digits, whole);
    o += whole;
    *o++ = '.';
    if (k) {
        memcpy(o, digits + whole, (size_t)k);
        o += k;
    } else {
        *o++ = '0';
    }
    return (size_t)(o - out);
}

/* The fast path; 0 when it does not apply. */
static size_t fast_fixed(double d, bool single, char *out)
{
    double a = fabs(d);
    if (a < 1e-4 || a >= (single ? 1e6 : 1e15)) return 0;
    int kmax = single ? 10 : 17;
    for (int k = 0; k <= kmax; k++) {
        double scaled = a * p10[k];
        if (scaled >= (single ? 16777216.0 : 9007199254740992.0)) return 0;
        uint64_t m = (uint64_t)llround(scaled);
        bool same = single ? (float)m / (float)p10[k] == (float)a : (double)m / p10[k] == a;
        if (same) return put_fixed(m, k, signbit(d), out);
    }
    return 0;
}

size_t dm_avro_json_format_double(double d, bool single, char *out)
{
    if (d == 0) {
        memcpy(out, signbit(d) ? "-0.0" : "0.0", signbit(d) ? 5 : 4);
        return signbit(d) ? 4 : 3;
    }
    size_t n = fast_fixed(d, single, out);
    if (n) return n;
    int lo = single ? 6 : 15, hi = single ? 9 : 17;
    int len = 0;
    for (int prec = lo; prec <= hi; prec++) {
        len = snprintf(out, 32, "%.*g", prec, d);
        if (prec == hi) break;
        if (single ? strtof(out, NULL) == (float)d : strtod(out, NULL) == d) break;
    }
    if (!strpbrk(out, ".eE")) {
        memcpy(out + len, ".0", 3);
        len += 2;
    }
    return (size_t)len;
}
