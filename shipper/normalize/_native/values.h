/* Reading record values as the Python normalizer does: Python's spaces and strip, duplicate
 * keys, times (epoch ms and ISO-8601), IP addresses.
 *
 * Part of ecs.c, which includes these files in order into one translation unit (so every call
 * can be inlined); each uses what the files before it define. */

/* ---- small helpers ------------------------------------------------------------------------ */

/* What Python's str.strip() removes, among ASCII characters. */
static int py_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

static int is_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return 0;
    return 1;
}

/* A non-empty string (the Python side's ``_str``), or NULL. */
static yyjson_val *nonempty_str(yyjson_val *v) { return (yyjson_is_str(v) && yyjson_get_len(v)) ? v : NULL; }

/* Python keeps the last of duplicate keys; yyjson keeps all: such objects go to Python. */
static int has_dup(yyjson_val *obj) {
    size_t n = yyjson_obj_size(obj);
    if (n < 2) return OK;
    if (n > MAX_DUP_SCAN) return FALLBACK;
    yyjson_val *keys[MAX_DUP_SCAN];
    size_t i = 0;
    yyjson_val *k;
    yyjson_obj_iter it = yyjson_obj_iter_with(obj);
    while ((k = yyjson_obj_iter_next(&it))) {
        size_t len = yyjson_get_len(k);
        const char *s = yyjson_get_str(k);
        for (size_t j = 0; j < i; j++)
            if (yyjson_get_len(keys[j]) == len && !memcmp(yyjson_get_str(keys[j]), s, len)) return FALLBACK;
        keys[i++] = k;
    }
    return OK;
}

/* ISO-8601 UTC with milliseconds, as format_ms (proleptic Gregorian, years 1970-9999). */
static void format_ms(long long ms, char out[24]) {
    long long days = ms / 86400000, rem = ms % 86400000;
    /* days -> civil date (H. Hinnant's algorithm) */
    long long z = days + 719468, era = z / 146097, doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long y = yoe + era * 400, doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153, d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    const long long parts[7][2] = {{y, 4}, {m, 2}, {d, 2}, {rem / 3600000, 2}, {rem / 60000 % 60, 2},
                                   {rem / 1000 % 60, 2}, {rem % 1000, 3}};
    static const char after[7] = {'-', '-', 'T', ':', ':', '.', 'Z'};
    char *o = out;
    for (int i = 0; i < 7; i++) {
        long long v = parts[i][0];
        for (long long w = parts[i][1] - 1; w >= 0; w--, v /= 10) o[w] = (char)('0' + v % 10);
        o += parts[i][1];
        *o++ = after[i];
    }
}

/* ---- fields ------------------------------------------------------------------------------- */

/* normalize_ip: 1 and the canonical text, 0 for "not an address", FALLBACK for non-ASCII. */
static int normalize_ip(yyjson_val *v, char out[INET6_ADDRSTRLEN]) {
    const char *s = yyjson_get_str(v);
    size_t n = yyjson_get_len(v);
    if (!is_ascii(s, n)) return FALLBACK; /* Python strips Unicode spaces too */
    while (n && py_space((unsigned char)*s)) s++, n--;
    while (n && py_space((unsigned char)s[n - 1])) n--;
    char buf[64];
    if (n >= sizeof buf || memchr(s, 0, n)) return 0;
    memcpy(buf, s, n);
    buf[n] = 0;
    unsigned char packed[16];
    if (!memchr(buf, ':', n)) return inet_pton(AF_INET, buf, packed) == 1 && inet_ntop(AF_INET, packed, out, INET6_ADDRSTRLEN);
    if (n > 7 && !strncasecmp(buf, "::ffff:", 7) && memchr(buf, '.', n) && inet_pton(AF_INET, buf + 7, packed) == 1)
        return inet_ntop(AF_INET, packed, out, INET6_ADDRSTRLEN) != NULL;
    if (inet_pton(AF_INET6, buf, packed) != 1) return 0;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!memcmp(packed, mapped, 12)) return inet_ntop(AF_INET, packed + 12, out, INET6_ADDRSTRLEN) != NULL;
    return inet_ntop(AF_INET6, packed, out, INET6_ADDRSTRLEN) != NULL;
}

static int digits(const char *s, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static long long days_from_civil(long long y, int m, int d) { /* H. Hinnant's algorithm */
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400, yoe = y - era * 400;
    long long doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

/* datetime.fromisoformat for the forms Postgres (row_to_json) and JavaScript write:
 * YYYY-MM-DD[T ]HH:MM:SS[.f{1,6}][Z|+HH:MM|-HH:MM], no offset meaning UTC. Others: Python. */
static int iso_ms(const char *s, size_t n, long long *ms) {
    int y, mo, d, h, mi, sec, us = 0, off = 0;
    if (n < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') || s[13] != ':' || s[16] != ':')
        return FALLBACK;
    if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) || !digits(s + 11, 2, &h) ||
        !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &sec))
        return FALLBACK;
    size_t i = 19;
    if (i < n && s[i] == '.') {
        size_t first = ++i;
        for (int scale = 100000; i < n && s[i] >= '0' && s[i] <= '9' && i - first < 6; scale /= 10, i++)
            us += (s[i] - '0') * scale;
        if (i == first || (i < n && s[i] >= '0' && s[i] <= '9')) return FALLBACK;
    }
    if (i < n) {
        int oh, om;
        if (s[i] == 'Z' && i + 1 == n) {
            off = 0;
        } else if ((s[i] == '+' || s[i] == '-') && n - i == 6 && s[i + 3] == ':' && digits(s + i + 1, 2, &oh) &&
                   digits(s + i + 4, 2, &om) && oh <= 23 && om <= 59) {
            off = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
        } else {
            return FALLBACK;
        }
    }
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > dim[mo - 1] + (mo == 2 && leap) || h > 23 || mi > 59 || sec > 59)
        return FALLBACK;
    long long t = (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off) * 1000 + us / 1000;
    if (t < 0 || t > MAX_MS) return FALLBACK;
    *ms = t;
    return OK;
}

/* parse_time: epoch milliseconds as a number or a digit string (the Management API, our files),
 * or the usual ISO-8601 forms (table rows). Other forms and everything refused: Python. */
static int epoch_ms(yyjson_val *v, long long *ms) {
    if (yyjson_is_uint(v)) {
        uint64_t u = yyjson_get_uint(v);
        if (u > (uint64_t)MAX_MS) return FALLBACK;
        *ms = (long long)u;
        return OK;
    }
    if (yyjson_is_sint(v)) {
        int64_t i = yyjson_get_sint(v);
        if (i < 0 || i > MAX_MS) return FALLBACK;
        *ms = i;
        return OK;
    }
    if (!yyjson_is_str(v)) return FALLBACK;
    const char *s = yyjson_get_str(v);
    size_t n = yyjson_get_len(v);
    if (!is_ascii(s, n)) return FALLBACK;
    while (n && py_space((unsigned char)*s)) s++, n--;
    while (n && py_space((unsigned char)s[n - 1])) n--;
    if (!n) return FALLBACK;
    long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return iso_ms(s, n, ms);
        if (i >= 15) return FALLBACK;
        x = x * 10 + (s[i] - '0');
    }
    if (x > MAX_MS) return FALLBACK;
    *ms = x;
    return OK;
}
