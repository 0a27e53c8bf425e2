/* nir: NIR shape, key and normal form. Error texts name the faulty part, never its
 * value (except the key, which identifies nobody). */
#include "nir.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define NIR_MAX_INPUT 64 /* nir_normalise refuses longer input before looking at it */

static bool
is_digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

static int
two_digits(const char *p)
{
    return (p[0] - '0') * 10 + (p[1] - '0');
}

static bool
sex_ok(const char *p)
{
    return p[0] != '\0' && strchr("123478", p[0]) != NULL;
}

static bool
year_ok(const char *p)
{
    return is_digits(p, 2);
}

/* INSEE: 01-12 real months; 20 and 30-42 pseudo-months for an unknown month;
 * 50-99 for people registered from an incomplete civil status. */
static bool
month_ok(const char *p)
{
    if (!is_digits(p, 2))
        return false;
    int m = two_digits(p);
    return (m >= 1 && m <= 12) || (m >= 20 && m <= 42) || m >= 50;
}

static bool
dept_ok(const char *p)
{
    return is_digits(p, 2) || (p[0] == '2' && (p[1] == 'A' || p[1] == 'B'));
}

static bool
place_and_order_ok(const char *p)
{
    return is_digits(p, 6);
}

/* The five parts of the 13-character number, checked in order. */
static const struct nir_part {
    bool (*ok)(const char *p);
    unsigned off;
    const char *what;
} nir_parts[] = {
    {sex_ok, 0, "sex digit (character 1) must be 1, 2, 3, 4, 7 or 8"},
    {year_ok, 1, "year (characters 2-3) must be 2 digits"},
    {month_ok, 3, "month (characters 4-5) must be 01-12, 20-42 or 50-99"},
    {dept_ok, 5, "departement (characters 6-7) must be 2 digits, 2A or 2B"},
    {place_and_order_ok, 7, "commune and order number (characters 8-13) must be digits"},
};

static int
check_shape(const char *nir, const char *path, pt_error_t *err)
{
    size_t len = strnlen(nir, NIR_MAX_INPUT);
    if (len != PT_NIR_LEN && len != PT_NIR_LEN + PT_NIR_KEY_LEN) {
        if (len >= NIR_MAX_INPUT)
            return pt_error_set(err, PT_EINVALID, path,
                                "is far too long, expected 13 or 15 "
                                "characters");
        return pt_error_set(err, PT_EINVALID, path, "has %zu characters, expected 13 or 15", len);
    }
    for (size_t i = 0; i < sizeof nir_parts / sizeof nir_parts[0]; i++)
        if (!nir_parts[i].ok(nir + nir_parts[i].off))
            return pt_error_set(err, PT_EINVALID, path, "%s", nir_parts[i].what);
    return 0;
}

int
nir_compute_key(const char *nir)
{
    if (nir == NULL || check_shape(nir, NULL, NULL) != 0)
        return PT_EINVALID;
    uint64_t n = 0;
    for (int i = 0; i < PT_NIR_LEN; i++) {
        unsigned d = (unsigned)(nir[i] - '0');
        /* Corsica: "2A" counts as 19 and "2B" as 18 (INSEE). */
        if (i == 5 && (nir[6] == 'A' || nir[6] == 'B'))
            d = 1;
        else if (i == 6 && nir[6] == 'A')
            d = 9;
        else if (i == 6 && nir[6] == 'B')
            d = 8;
        n = n * 10 + d;
    }
    return (int)(97 - n % 97);
}

int
nir_validate(const char *nir, const char *path, pt_error_t *err)
{
    if (path == NULL || path[0] == '\0')
        path = "nir";
    if (nir == NULL)
        return pt_error_set(err, PT_EINVALID, path, "is missing");
    int rc = check_shape(nir, path, err);
    if (rc != 0)
        return rc;
    if (nir[PT_NIR_LEN] == '\0')
        return 0;
    if (!is_digits(nir + PT_NIR_LEN, PT_NIR_KEY_LEN))
        return pt_error_set(err, PT_EINVALID, path, "key (characters 14-15) must be 2 digits");
    int key = two_digits(nir + PT_NIR_LEN);
    int expected = nir_compute_key(nir);
    if (key != expected)
        return pt_error_set(err, PT_EINVALID, path, "key %02d does not match, expected %02d", key,
                            expected);
    return 0;
}

bool
nir_is_valid(const char *nir)
{
    return nir_validate(nir, NULL, NULL) == 0;
}

int
nir_normalise(const char *in, char out[PT_NIR_NORM_SIZE], pt_error_t *err)
{
    char buf[PT_NIR_LEN + PT_NIR_KEY_LEN + 2];
    size_t n = 0;
    out[0] = '\0';
    if (in == NULL)
        return pt_error_set(err, PT_EINVALID, "nir", "is missing");
    for (size_t i = 0; in[i] != '\0'; i++) {
        char ch = in[i];
        if (i == NIR_MAX_INPUT)
            return pt_error_set(err, PT_EINVALID, "nir",
                                "is far too long, expected 13 or 15 "
                                "characters");
        if (ch == ' ' || ch == '.')
            continue;
        if (n == sizeof buf - 1)
            return pt_error_set(err, PT_EINVALID, "nir",
                                "has too many characters, expected 13 "
                                "or 15");
        buf[n++] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 'a' + 'A') : ch;
    }
    buf[n] = '\0';
    int rc = nir_validate(buf, "nir", err);
    if (rc != 0)
        return rc;
    memcpy(out, buf, PT_NIR_LEN);
    out[PT_NIR_LEN] = '\0';
    return 0;
}
