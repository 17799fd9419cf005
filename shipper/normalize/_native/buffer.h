/* The output buffer and orjson's string escaping.
 *
 * Part of ecs.c, which includes these files in order into one translation unit (so every call
 * can be inlined); each uses what the files before it define. */

/* ---- output buffer ------------------------------------------------------------------------ */

typedef struct {
    char *p;
    size_t len, cap;
} Buf;

static int reserve(Buf *b, size_t extra) {
    if (b->len + extra <= b->cap) return OK;
    size_t cap = b->cap ? b->cap : 8192;
    while (cap < b->len + extra) cap *= 2;
    char *p = PyMem_Realloc(b->p, cap);
    if (!p) {
        PyErr_NoMemory();
        return ERR;
    }
    b->p = p;
    b->cap = cap;
    return OK;
}

static int put(Buf *b, const char *s, size_t n) {
    TRY(reserve(b, n));
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return OK;
}
#define PUTLIT(b, lit) put((b), (lit), sizeof(lit) - 1)

/* orjson's escaping: the two mandatory escapes, short forms for \b \t \n \f \r, \u00xx (lower
 * case) for the other control characters, everything else (non-ASCII, DEL, '/') as is. */
static char ESC[256];
static const char HEX[] = "0123456789abcdef";

static void init_escapes(void) {
    for (int c = 0; c < 0x20; c++) ESC[c] = 'u';
    ESC['\b'] = 'b';
    ESC['\t'] = 't';
    ESC['\n'] = 'n';
    ESC['\f'] = 'f';
    ESC['\r'] = 'r';
    ESC['"'] = '"';
    ESC['\\'] = '\\';
}

/* Whether any of 8 bytes is below 0x20, '"' or '\\' (exact as a whole, SWAR). */
static inline int may_escape(uint64_t x) {
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
    uint64_t below = (x - ones * 0x20) & ~x, quote = (q - ones) & ~q, slash = (bs - ones) & ~bs;
    return ((below | quote | slash) & high) != 0;
}

static int put_str(Buf *b, const char *s, size_t n) {
    TRY(reserve(b, n * 6 + 2));
    char *o = b->p + b->len;
    *o++ = '"';
    size_t run = 0, i = 0;
    for (;;) {
        while (i + 8 <= n) { /* skip 8 plain bytes at a time: most strings need no escape */
            uint64_t x;
            memcpy(&x, s + i, 8);
            if (may_escape(x)) break;
            i += 8;
        }
        if (i >= n) break;
        unsigned char c = (unsigned char)s[i++];
        char e = ESC[c];
        if (!e) continue;
        size_t at = i - 1;
        memcpy(o, s + run, at - run);
        o += at - run;
        run = at + 1;
        *o++ = '\\';
        if (e == 'u') {
            o[0] = 'u', o[1] = '0', o[2] = '0', o[3] = HEX[c >> 4], o[4] = HEX[c & 15];
            o += 5;
        } else {
            *o++ = e;
        }
    }
    memcpy(o, s + run, n - run);
    o += n - run;
    *o++ = '"';
    b->len = (size_t)(o - b->p);
    return OK;
}

static int put_val_str(Buf *b, yyjson_val *v) { return put_str(b, yyjson_get_str(v), yyjson_get_len(v)); }


static int put_int(Buf *b, yyjson_val *v) {
    char tmp[24], *end = tmp + sizeof tmp, *o = end;
    int neg = yyjson_is_sint(v) && yyjson_get_sint(v) < 0;
    uint64_t u = neg ? (uint64_t)0 - (uint64_t)yyjson_get_sint(v) : yyjson_get_uint(v);
    do *--o = (char)('0' + u % 10); while (u /= 10);
    if (neg) *--o = '-';
    return put(b, o, (size_t)(end - o));
}
