/* The normalizer's native path: one Logto JSON line -> (id, epoch ms, ECS document as JSON).
 *
 * It gives the same bytes as shipper.normalize.document.Normalizer.line followed by
 * orjson.dumps (tests/test_native.py checks that on generated and on hypothesis-made records)
 * for the records it recognises, without building a Python object per field: the Python path
 * spends most of its time creating and freeing dicts and strings. Whatever it does not handle
 * exactly the Python way answers None and the Python normalizer decides: invalid lines and every
 * other rejection, ISO-8601 timestamps, floats anywhere, duplicate keys, a string `payload` or
 * `error` holding JSON, non-ASCII text where Python's Unicode rules (strip, lower) would matter.
 *
 * The rules stay in Python, asked once per distinct key and cached here: which keys are secrets
 * (Masker._verdict), the key -> ECS event fields table (Normalizer._event_json), and the parsing
 * and formatting of geo coordinates (location_json).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "yyjson/yyjson.h"

#define MAX_ID_BYTES 512 /* Elasticsearch refuses longer _id values */
#define MAX_MS 253402300799999LL /* 9999-12-31T23:59:59.999Z */
#define FLAT_DEPTH 20 /* Masker's FLAT_DEPTH: the depth_limit of logto.payload's mapping */
#define MAX_DEPTH 200 /* deeper: Python (orjson's limit is 1024) */
#define MAX_DUP_SCAN 64 /* objects with more keys are checked for duplicates by Python */
#define CACHE_SLOTS 16384 /* power of two */
#define CACHE_PROBES 8
#define CACHE_KEY_MAX 128 /* longer keys are asked of Python every time */
#define POOL_BYTES (256 * 1024) /* yyjson's arena for one line; bigger lines use malloc */
#define MASK "\"******\""

enum { OK = 0, FALLBACK = -1, ERR = -2 }; /* ERR: a Python exception is set */
#define TRY(x)                                                                                     \
    do {                                                                                           \
        int r_ = (x);                                                                              \
        if (r_ < 0) return r_;                                                                     \
    } while (0)

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

static int put_int(Buf *b, yyjson_val *v) {
    char tmp[24], *end = tmp + sizeof tmp, *o = end;
    int neg = yyjson_is_sint(v) && yyjson_get_sint(v) < 0;
    uint64_t u = neg ? (uint64_t)0 - (uint64_t)yyjson_get_sint(v) : yyjson_get_uint(v);
    do *--o = (char)('0' + u % 10); while (u /= 10);
    if (neg) *--o = '-';
    return put(b, o, (size_t)(end - o));
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

/* ---- caches of Python's answers ----------------------------------------------------------- */

typedef struct {
    uint64_t hash;
    char *key; /* NULL: empty slot */
    size_t len;
    long num;       /* a verdict */
    PyObject *obj;  /* or an object (owned) */
} Slot;

static uint64_t fnv1a(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static Slot *cache_find(Slot *slots, const char *k, size_t n, uint64_t h, int *found) {
    *found = 0;
    if (!slots || n > CACHE_KEY_MAX) return NULL;
    for (int i = 0; i < CACHE_PROBES; i++) {
        Slot *s = &slots[(h + (uint64_t)i) & (CACHE_SLOTS - 1)];
        if (!s->key) return s;
        if (s->hash == h && s->len == n && !memcmp(s->key, k, n)) {
            *found = 1;
            return s;
        }
    }
    return NULL; /* neighbourhood full: not cached, asked every time (bounded, like Python's) */
}

static void cache_fill(Slot *s, const char *k, size_t n, uint64_t h, long num, PyObject *obj) {
    char *copy = PyMem_Malloc(n ? n : 1);
    if (!copy) return; /* not cached: still right */
    memcpy(copy, k, n);
    s->key = copy, s->len = n, s->hash = h, s->num = num, s->obj = obj;
    Py_XINCREF(obj);
}

static void cache_clear(Slot *slots) {
    if (!slots) return;
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        PyMem_Free(slots[i].key);
        slots[i].key = NULL;
        Py_CLEAR(slots[i].obj);
    }
}

/* ---- the field table (shipper/normalize/fields.py, as native_rows() gives it) --------------- */

/* The kinds of fields.py's Kind; INT and COLLECT are Python's only. */
enum { K_STR, K_TEXT, K_CODE, K_IP, K_BAD_IP, K_GEO, K_TIME, K_OUTCOME, K_CONST, K_RULES, K_FAMILY, K_PAYLOAD, K_TAGS };
#define MAX_KEYS 8 /* keys in a path */
#define MAX_SOURCES 4
#define MAX_STRINGS 16
#define MAX_ROWS 96
#define MAX_DECODE 4 /* JSON_IN_STRING members */
#define MAX_PREFIXES 128 /* distinct source paths and their prefixes */

typedef struct {
    char *s; /* owned, NUL-terminated */
    size_t n;
} Bytes;

typedef struct {
    int n;
    Bytes k[MAX_KEYS];
} Path;

typedef struct {
    int kind, alt, tag, nsources, nstrings;
    Path keys;                     /* the field's path, each key as a JSON string and ':' */
    int key_ids[MAX_KEYS];         /* each prefix of it, interned (Fast.objects) */
    Path sources[MAX_SOURCES];     /* key paths into the record */
    int source_ids[MAX_SOURCES];   /* ... as prefixes of Fast.prefixes */
    Bytes strings[MAX_STRINGS];    /* OUTCOME (from, to, ..., default); CONST, TAGS: JSON */
} Row;

/* A source path, interned: the key below its parent path (-1: the record). Each is read once
 * per record, however many rows use it or paths below it. */
typedef struct {
    int parent;
    const Bytes *key; /* owned by a row's sources */
} Prefix;

/* ---- the normalizer object ---------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *verdict;  /* (key: str, in_params: bool) -> 0 plain, 1 secret, 2 params container */
    PyObject *event;    /* (key: str, outcome: str) -> (bytes after "outcome", family as JSON) */
    PyObject *location; /* (lat, lon) -> b'{"lat":..,"lon":..}' | None */
    Py_ssize_t max_line;
    Slot *verdicts[2]; /* outside / inside request parameters */
    Slot *events;
    Row *rows; /* the field table */
    int nrows, ndecode, nprefixes;
    Prefix prefixes[MAX_PREFIXES];
    Prefix objects[MAX_PREFIXES]; /* the document's paths, interned alike */
    int nobjects;
    int envelope[3]; /* the prefixes of the record's "id", "key" and "payload", or -1 */
    Bytes decode[MAX_DECODE]; /* JSON_IN_STRING */
    Buf out, tmp, block;
    char *pool;
    int busy; /* a callback lets other threads run: a second caller meanwhile gets "Python decides" */
} Fast;

static int verdict(Fast *f, yyjson_val *key, int in_params) {
    const char *k = yyjson_get_str(key);
    size_t n = yyjson_get_len(key);
    uint64_t h = fnv1a(k, n);
    int found;
    Slot *s = cache_find(f->verdicts[in_params], k, n, h, &found);
    if (found) return (int)s->num;
    PyObject *py = PyUnicode_DecodeUTF8(k, (Py_ssize_t)n, "strict");
    if (!py) return ERR;
    PyObject *r = PyObject_CallFunctionObjArgs(f->verdict, py, in_params ? Py_True : Py_False, NULL);
    Py_DECREF(py);
    if (!r) return ERR;
    long v = PyLong_AsLong(r);
    Py_DECREF(r);
    if (v == -1 && PyErr_Occurred()) return ERR;
    if (v < 0 || v > 3) {
        PyErr_SetString(PyExc_ValueError, "verdict must be 0, 1, 2 or 3");
        return ERR;
    }
    if (s) cache_fill(s, k, n, h, v, NULL);
    return (int)v;
}

/* The (RULES members, family JSON) of a key and outcome, cached; a new reference or NULL (error). */
static PyObject *event_parts(Fast *f, yyjson_val *key, const char *outcome, int outcome_i) {
    const char *k = yyjson_get_str(key);
    size_t n = yyjson_get_len(key);
    char lookup[CACHE_KEY_MAX + 2];
    uint64_t h = 0;
    Slot *s = NULL;
    int found = 0;
    if (n <= CACHE_KEY_MAX) {
        memcpy(lookup, k, n);
        lookup[n] = (char)('0' + outcome_i); /* which of the OUTCOME row's values */
        h = fnv1a(lookup, n + 1);
        s = cache_find(f->events, lookup, n + 1, h, &found);
        if (found) return Py_NewRef(s->obj);
    }
    PyObject *py = PyUnicode_DecodeUTF8(k, (Py_ssize_t)n, "strict");
    if (!py) return NULL;
    PyObject *r = PyObject_CallFunction(f->event, "Os", py, outcome);
    Py_DECREF(py);
    if (!r) return NULL;
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(r, 0)) ||
        !PyBytes_Check(PyTuple_GET_ITEM(r, 1))) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_TypeError, "event callback must return (bytes, bytes)");
        return NULL;
    }
    if (s) cache_fill(s, lookup, n + 1, h, 0, r);
    return r;
}

/* ---- serializing (parts of) the payload --------------------------------------------------- */

static int write_masked(Fast *f, Buf *b, yyjson_val *v, int in_params, int depth);

/* FALLBACK when nested deeper than MAX_DEPTH: parts never serialized are checked with this. */
static int shallow(yyjson_val *v, int depth) {
    if (!yyjson_is_ctn(v)) return OK;
    if (depth > MAX_DEPTH) return FALLBACK;
    yyjson_val *x;
    if (yyjson_is_arr(v)) {
        yyjson_arr_iter it = yyjson_arr_iter_with(v);
        while ((x = yyjson_arr_iter_next(&it)))
            TRY(shallow(x, depth + 1));
    } else {
        yyjson_obj_iter it = yyjson_obj_iter_with(v);
        while ((x = yyjson_obj_iter_next(&it)))
            TRY(shallow(yyjson_obj_iter_get_val(x), depth + 1));
    }
    return OK;
}

static int write_scalar(Buf *b, yyjson_val *v) {
    switch (yyjson_get_type(v)) {
    case YYJSON_TYPE_NULL:
        return PUTLIT(b, "null");
    case YYJSON_TYPE_BOOL:
        return yyjson_get_bool(v) ? PUTLIT(b, "true") : PUTLIT(b, "false");
    case YYJSON_TYPE_NUM:
        if (yyjson_is_real(v)) return FALLBACK; /* float formatting stays orjson's */
        return put_int(b, v);
    case YYJSON_TYPE_STR:
        return put_val_str(b, v);
    default:
        return FALLBACK;
    }
}

/* Masker._mask_dict / _mask_list: a secret key's value (unless null or boolean) becomes MASK;
 * under a params container, the OAuth parameter keys are secrets too (one level down). Without
 * f nothing is masked (orjson.dumps of a value). swap: members written as other values
 * (JSON_IN_STRING members decoded), at the top only. */
/* A JSON_IN_STRING member's string value, and the object it holds (read in its place). */
typedef struct {
    int n;
    yyjson_val *from[MAX_DECODE], *to[MAX_DECODE];
    yyjson_doc *doc[MAX_DECODE];
} Swap;

static yyjson_val *swapped(const Swap *swap, yyjson_val *v) {
    for (int d = 0; swap && d < swap->n; d++)
        if (v == swap->from[d]) return swap->to[d];
    return v;
}

static int write_masked_obj(Fast *f, Buf *b, yyjson_val *obj, int in_params, int depth, const Swap *swap) {
    if (depth > MAX_DEPTH) return FALLBACK;
    /* Members deeper than FLAT_DEPTH keys (Masker): Python writes the object as JSON text. depth
     * counts arrays too, so it is never below the object's key path + 1: never too late. */
    if (f && depth > FLAT_DEPTH && yyjson_obj_size(obj)) return FALLBACK;
    TRY(has_dup(obj));
    TRY(PUTLIT(b, "{"));
    size_t i, max;
    yyjson_val *k, *item;
    yyjson_obj_foreach(obj, i, max, k, item) {
        if (i) TRY(PUTLIT(b, ","));
        TRY(put_val_str(b, k));
        TRY(PUTLIT(b, ":"));
        yyjson_val *x = swapped(swap, item); /* (the loop steps from item) */
        int vd = f ? verdict(f, k, in_params) : 0;
        TRY(vd);
        if (vd == 3) return FALLBACK; /* a key flattened refuses: Python escapes it */
        if (vd == 1) {
            if (yyjson_is_null(x) || yyjson_is_bool(x)) {
                TRY(write_scalar(b, x));
            } else {
                TRY(shallow(x, depth + 1)); /* dropped unread, but orjson refuses deep nesting */
                TRY(PUTLIT(b, MASK));
            }
        } else if (yyjson_is_obj(x) || yyjson_is_arr(x)) {
            TRY(write_masked(f, b, x, vd == 2, depth + 1));
        } else {
            TRY(write_scalar(b, x));
        }
    }
    return PUTLIT(b, "}");
}

static int write_masked(Fast *f, Buf *b, yyjson_val *v, int in_params, int depth) {
    if (yyjson_is_obj(v)) return write_masked_obj(f, b, v, in_params, depth, NULL);
    if (!yyjson_is_arr(v)) return write_scalar(b, v);
    if (depth > MAX_DEPTH) return FALLBACK;
    TRY(PUTLIT(b, "["));
    size_t i, max;
    yyjson_val *x;
    yyjson_arr_foreach(v, i, max, x) {
        if (i) TRY(PUTLIT(b, ","));
        TRY(write_masked(f, b, x, in_params, depth + 1));
    }
    return PUTLIT(b, "]");
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

/* ---- one record: the field table interpreted ---------------------------------------------- */

typedef struct {
    yyjson_val *root, *payload, *key;
    long long ms;
    Swap swap;
    yyjson_val *checked[32]; /* objects already checked for duplicate keys */
    int nchecked;
    const char *outcome;
    int outcome_i;
    unsigned tags;
    PyObject *parts; /* the rules' answer for key and outcome (tail, family), once asked */
    yyjson_val *ip_of; /* the last address normalized, and its answer */
    int ip_rc;
    char ip[INET6_ADDRSTRLEN];
    int open;                       /* objects open below the document */
    int stack[MAX_KEYS];            /* the open objects' ids */
    int members[MAX_KEYS + 1];      /* per open object: has a member */
    /* Not cleared per record beyond Fast.nprefixes: */
    unsigned char read[MAX_PREFIXES];
    yyjson_val *values[MAX_PREFIXES]; /* per prefix, once read */
} Rec;

/* Python keeps the last of duplicate keys: every object a field is read from is checked once. */
static int check_once(Rec *r, yyjson_val *obj) {
    for (int i = 0; i < r->nchecked; i++)
        if (r->checked[i] == obj) return OK;
    TRY(has_dup(obj));
    if (r->nchecked < (int)(sizeof r->checked / sizeof r->checked[0])) r->checked[r->nchecked++] = obj;
    return OK;
}

/* The value at a source path (NULL when absent), a decoded JSON_IN_STRING member in its place. */
static int resolve_slow(Fast *f, Rec *r, int id, yyjson_val **out);

static inline int resolve(Fast *f, Rec *r, int id, yyjson_val **out) {
    if (r->read[id]) {
        *out = r->values[id];
        return OK;
    }
    return resolve_slow(f, r, id, out);
}

static int resolve_slow(Fast *f, Rec *r, int id, yyjson_val **out) {
    const Prefix *p = &f->prefixes[id];
    yyjson_val *parent = r->root, *v = NULL;
    if (p->parent >= 0) TRY(resolve(f, r, p->parent, &parent));
    if (yyjson_is_obj(parent)) {
        TRY(check_once(r, parent));
        if ((v = yyjson_obj_getn(parent, p->key->s, p->key->n))) v = swapped(&r->swap, v);
    }
    r->values[id] = v;
    r->read[id] = 1;
    *out = v;
    return OK;
}

enum { NONEMPTY_STR, NOT_NULL, STR_OR_INT };

/* The first source whose value passes the test (or NULL). */
static inline int pick(Fast *f, Rec *r, const Row *row, int test, yyjson_val **out) {
    for (int i = 0; i < row->nsources; i++) {
        TRY(resolve(f, r, row->source_ids[i], out));
        yyjson_val *v = *out;
        if (v && (test == NONEMPTY_STR   ? yyjson_is_str(v) && yyjson_get_len(v) > 0
                  : test == NOT_NULL     ? !yyjson_is_null(v)
                                         : yyjson_is_str(v) || yyjson_is_int(v)))
            return OK;
    }
    *out = NULL;
    return OK;
}

static int bytes_eq(const Bytes *a, const Bytes *b) { return a->n == b->n && !memcmp(a->s, b->s, a->n); }

/* Close the objects the row is not in, open those it is in (its first nparents keys). */
static inline int open_path(Buf *b, Rec *r, const Row *row, int nparents) {
    int common = 0;
    while (common < r->open && common < nparents && r->stack[common] == row->key_ids[common]) common++;
    for (; r->open > common; r->open--) TRY(PUTLIT(b, "}"));
    for (int i = common; i < nparents; i++) {
        if (r->members[i]) TRY(PUTLIT(b, ","));
        r->members[i] = 1;
        TRY(put(b, row->keys.k[i].s, row->keys.k[i].n));
        TRY(PUTLIT(b, "{"));
        r->stack[r->open++] = row->key_ids[i];
        r->members[i + 1] = 0;
    }
    if (r->members[nparents]) TRY(PUTLIT(b, ","));
    r->members[nparents] = 1;
    return OK;
}

/* ,"leaf": (its objects opened first) */
static inline int open_member(Buf *b, Rec *r, const Row *row) {
    int last = row->keys.n - 1;
    TRY(open_path(b, r, row, last));
    return put(b, row->keys.k[last].s, row->keys.k[last].n);
}

static int put_bytes(Buf *b, PyObject *bytes) { return put(b, PyBytes_AS_STRING(bytes), (size_t)PyBytes_GET_SIZE(bytes)); }

static int rules(Fast *f, Rec *r) {
    if (!r->parts && !(r->parts = event_parts(f, r->key, r->outcome, r->outcome_i))) return ERR;
    return OK;
}

/* normalize_ip, remembered for the value last asked (source.ip, client.ip and logto.ip read one). */
static int address(Rec *r, yyjson_val *v) {
    if (v != r->ip_of) {
        r->ip_of = v;
        r->ip_rc = normalize_ip(v, r->ip);
    }
    return r->ip_rc;
}

/* Python's float() of a coordinate is asked of Python: int or str, never a float here. */
static PyObject *coordinate(yyjson_val *v) {
    if (yyjson_is_str(v)) return PyUnicode_DecodeUTF8(yyjson_get_str(v), (Py_ssize_t)yyjson_get_len(v), "strict");
    if (yyjson_is_uint(v)) return PyLong_FromUnsignedLongLong(yyjson_get_uint(v));
    if (yyjson_is_sint(v)) return PyLong_FromLongLong(yyjson_get_sint(v));
    Py_RETURN_NONE;
}

/* GEO_POINT: location_json(lat, lon) -> bytes | None (a new reference), or NULL with *rc set. */
static PyObject *geo_point(Fast *f, Rec *r, const Row *row, int *rc) {
    yyjson_val *lat, *lon;
    if ((*rc = resolve(f, r, row->source_ids[0], &lat)) < 0 || (*rc = resolve(f, r, row->source_ids[1], &lon)) < 0)
        return NULL;
    if (yyjson_is_real(lat) || yyjson_is_real(lon)) {
        *rc = FALLBACK;
        return NULL;
    }
    if (!(yyjson_is_str(lat) || yyjson_is_int(lat)) || !(yyjson_is_str(lon) || yyjson_is_int(lon))) return Py_NewRef(Py_None);
    PyObject *a = coordinate(lat), *o = a ? coordinate(lon) : NULL;
    PyObject *res = o ? PyObject_CallFunctionObjArgs(f->location, a, o, NULL) : NULL;
    Py_XDECREF(a);
    Py_XDECREF(o);
    if (!res) *rc = ERR;
    return res;
}

/* One row: its value written into b (with the objects it sits in), or nothing. *wrote: whether. */
static inline __attribute__((always_inline)) int field(Fast *f, Rec *r, const Row *row, Buf *b, int *wrote) {
    yyjson_val *v = NULL;
    *wrote = 0;
    switch (row->kind) {
    case K_STR:
        TRY(pick(f, r, row, NONEMPTY_STR, &v));
        if (!v) return OK;
        TRY(open_member(b, r, row));
        TRY(put_val_str(b, v));
        break;
    case K_TEXT:
        TRY(pick(f, r, row, NOT_NULL, &v));
        if (!v) return OK;
        if (!yyjson_is_str(v)) {
            f->tmp.len = 0;
            TRY(write_masked(NULL, &f->tmp, v, 0, 1));
        }
        TRY(open_member(b, r, row));
        TRY(yyjson_is_str(v) ? put_val_str(b, v) : put_str(b, f->tmp.p, f->tmp.len));
        break;
    case K_CODE:
        TRY(pick(f, r, row, STR_OR_INT, &v));
        if (!v) return OK;
        TRY(open_member(b, r, row));
        if (yyjson_is_str(v)) {
            TRY(put_val_str(b, v));
        } else {
            TRY(PUTLIT(b, "\""));
            TRY(put_int(b, v));
            TRY(PUTLIT(b, "\""));
        }
        break;
    case K_IP:
    case K_BAD_IP: {
        TRY(pick(f, r, row, NONEMPTY_STR, &v));
        if (!v) return OK;
        int ok = address(r, v);
        TRY(ok);
        if (ok != (row->kind == K_IP)) return OK;
        TRY(open_member(b, r, row));
        if (ok) {
            TRY(PUTLIT(b, "\""));
            TRY(put(b, r->ip, strlen(r->ip)));
            TRY(PUTLIT(b, "\""));
        } else {
            TRY(put_val_str(b, v));
            r->tags |= 1u << row->tag;
        }
        break;
    }
    case K_GEO: {
        int rc = OK;
        PyObject *loc = geo_point(f, r, row, &rc);
        if (!loc) return rc;
        int out = OK;
        if (PyBytes_Check(loc) && ((out = open_member(b, r, row)) == OK)) out = put_bytes(b, loc);
        *wrote = PyBytes_Check(loc);
        Py_DECREF(loc);
        return out;
    }
    case K_TIME: {
        char ts[24];
        format_ms(r->ms, ts);
        TRY(open_member(b, r, row));
        TRY(PUTLIT(b, "\""));
        TRY(put(b, ts, 24));
        TRY(PUTLIT(b, "\""));
        break;
    }
    case K_OUTCOME: {
        TRY(resolve(f, r, row->source_ids[0], &v));
        int last = row->nstrings - 1, i = yyjson_is_str(v) ? 0 : last;
        for (; i < last; i += 2)
            if (yyjson_get_len(v) == row->strings[i].n && !memcmp(yyjson_get_str(v), row->strings[i].s, row->strings[i].n))
                break;
        const Bytes *out = i < last ? &row->strings[i + 1] : &row->strings[last];
        r->outcome = out->s;
        r->outcome_i = i / 2;
        TRY(open_member(b, r, row));
        TRY(put_str(b, out->s, out->n));
        break;
    }
    case K_CONST:
        TRY(open_member(b, r, row));
        TRY(put(b, row->strings[0].s, row->strings[0].n));
        break;
    case K_RULES:
        TRY(rules(f, r));
        TRY(open_path(b, r, row, row->keys.n));
        TRY(put_bytes(b, PyTuple_GET_ITEM(r->parts, 0)));
        break;
    case K_FAMILY:
        TRY(rules(f, r));
        TRY(open_member(b, r, row));
        TRY(put_bytes(b, PyTuple_GET_ITEM(r->parts, 1)));
        break;
    case K_PAYLOAD:
        TRY(resolve(f, r, row->source_ids[0], &v));
        TRY(open_member(b, r, row));
        if (yyjson_is_obj(v)) {
            TRY(write_masked_obj(f, b, v, 0, 1, &r->swap));
        } else {
            TRY(PUTLIT(b, "{}"));
        }
        break;
    case K_TAGS: {
        if (!r->tags) return OK;
        TRY(open_member(b, r, row));
        const char *sep = "[";
        for (int i = 0; i < row->nstrings; i++) {
            if (!(r->tags & (1u << i))) continue;
            TRY(put(b, sep, 1));
            sep = ",";
            TRY(put(b, row->strings[i].s, row->strings[i].n));
        }
        TRY(PUTLIT(b, "]"));
        break;
    }
    default:
        return FALLBACK;
    }
    *wrote = 1;
    return OK;
}

/* JSON_IN_STRING: a payload member whose string holds a JSON object is read as that object.
 * Strings Python would strip differently (Unicode spaces), or whose JSON it must judge: Python. */
static int decode_members(Fast *f, Rec *r) {
    for (int i = 0; i < f->ndecode && r->payload; i++) {
        yyjson_val *v = yyjson_obj_getn(r->payload, f->decode[i].s, f->decode[i].n);
        if (!yyjson_is_str(v)) continue;
        const char *s = yyjson_get_str(v);
        size_t n = yyjson_get_len(v), j = 0;
        while (j < n && py_space((unsigned char)s[j])) j++;
        if (j == n || s[j] != '{') {
            if (j < n && (unsigned char)s[j] >= 0x80) return FALLBACK; /* a Unicode space? */
            continue;
        }
        while (n > j && py_space((unsigned char)s[n - 1])) n--;
        if ((unsigned char)s[n - 1] >= 0x80) return FALLBACK;
        yyjson_doc *doc = yyjson_read(s + j, n - j, 0);
        if (!doc) return FALLBACK; /* Python keeps such a string as it is; it decides */
        int k = r->swap.n++;
        r->swap.from[k] = v, r->swap.to[k] = yyjson_doc_get_root(doc), r->swap.doc[k] = doc;
        if (!yyjson_is_obj(r->swap.to[k])) return FALLBACK;
    }
    return OK;
}

static int build(Fast *f, yyjson_val *root, yyjson_val **id_out, long long *ms_out) {
    Buf *b = &f->out;
    if (!yyjson_is_obj(root)) return FALLBACK;
    TRY(has_dup(root));
    yyjson_val *id = nonempty_str(yyjson_obj_get(root, "id"));
    if (!id || yyjson_get_len(id) > MAX_ID_BYTES) return FALLBACK;
    yyjson_val *key = nonempty_str(yyjson_obj_get(root, "key"));
    if (!key) return FALLBACK;
    if (yyjson_obj_get(root, "origin")) return FALLBACK; /* webhook deliveries: Python maps them */
    yyjson_val *created = yyjson_obj_get(root, "createdAt");
    if (!created) created = yyjson_obj_get(root, "created_at");
    long long ms;
    if (!created) return FALLBACK;
    TRY(epoch_ms(created, &ms));
    yyjson_val *payload = yyjson_obj_get(root, "payload");
    if (payload && !yyjson_is_null(payload) && !yyjson_is_obj(payload)) return FALLBACK;
    if (yyjson_is_null(payload)) payload = NULL;
    if (payload) TRY(has_dup(payload)); /* before reading any field of it */
    {
        yyjson_val *k, *x;
        yyjson_obj_iter it = yyjson_obj_iter_with(root);
        while ((k = yyjson_obj_iter_next(&it)))
            if ((x = yyjson_obj_iter_get_val(k)) != payload) TRY(shallow(x, 1));
    }
    Rec r;
    memset(&r, 0, offsetof(Rec, read));
    memset(r.read, 0, (size_t)f->nprefixes);
    r.root = root, r.payload = payload, r.key = key, r.ms = ms, r.outcome = "", r.nchecked = 1;
    r.checked[0] = root;
    if (payload) r.checked[r.nchecked++] = payload;
    /* what the envelope read already */
    yyjson_val *known[3] = {id, key, payload};
    for (int i = 0; i < 3; i++)
        if (f->envelope[i] >= 0) r.values[f->envelope[i]] = known[i], r.read[f->envelope[i]] = 1;
    int rc = decode_members(f, &r);
    b->len = 0;
    if (rc == OK) rc = PUTLIT(b, "{");
    for (int i = 0, wrote = 0; rc == OK && i < f->nrows; i++) {
        if (f->rows[i].alt && wrote) continue;
        rc = field(f, &r, &f->rows[i], b, &wrote);
    }
    for (; rc == OK && r.open > 0; r.open--) rc = PUTLIT(b, "}");
    if (rc == OK) rc = PUTLIT(b, "}");
    for (int d = 0; d < r.swap.n; d++) yyjson_doc_free(r.swap.doc[d]);
    Py_XDECREF(r.parts);
    if (rc == OK) {
        *id_out = id;
        *ms_out = ms;
    }
    return rc == ERR || PyErr_Occurred() ? ERR : rc;
}

/* One line into f->out; OK with its id (a new str) and time, FALLBACK, or ERR. */
static int one(Fast *f, PyObject *line, PyObject **id_out, long long *ms_out) {
    if (!PyBytes_Check(line)) return FALLBACK;
    Py_ssize_t n = PyBytes_GET_SIZE(line);
    if (n > f->max_line) return FALLBACK;
    char *raw = PyBytes_AS_STRING(line);
    yyjson_alc alc;
    yyjson_doc *doc = NULL;
    if (yyjson_alc_pool_init(&alc, f->pool, POOL_BYTES)) doc = yyjson_read_opts(raw, (size_t)n, 0, &alc, NULL);
    if (!doc) doc = yyjson_read_opts(raw, (size_t)n, 0, NULL, NULL); /* too big for the pool, or invalid */
    if (!doc) return FALLBACK;
    yyjson_val *id = NULL;
    int rc = build(f, yyjson_doc_get_root(doc), &id, ms_out);
    if (rc == OK) {
        *id_out = PyUnicode_DecodeUTF8(yyjson_get_str(id), (Py_ssize_t)yyjson_get_len(id), "strict");
        if (!*id_out) rc = ERR;
    }
    yyjson_doc_free(doc);
    return rc;
}

static void shrink(Buf *b, size_t limit) { /* one huge line must not pin its buffer forever */
    if (b->cap > limit) {
        PyMem_Free(b->p);
        *b = (Buf){0};
    }
}

static PyObject *Fast_line(Fast *f, PyObject *arg) {
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "line() takes bytes");
        return NULL;
    }
    if (f->busy) Py_RETURN_NONE;
    PyObject *id = NULL, *out = NULL;
    long long ms;
    f->busy = 1;
    int rc = one(f, arg, &id, &ms);
    f->busy = 0;
    if (rc == OK) {
        out = Py_BuildValue("(NLy#)", id, ms, f->out.p, (Py_ssize_t)f->out.len);
    } else if (rc == FALLBACK) {
        out = Py_NewRef(Py_None);
    }
    shrink(&f->out, 8u << 20);
    return out;
}

static int blank(PyObject *line) {
    const char *s = PyBytes_AS_STRING(line);
    Py_ssize_t n = PyBytes_GET_SIZE(line);
    for (Py_ssize_t i = 0; i < n; i++)
        if (!(s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r'))) return 0;
    return 1; /* bytes.isspace(), or empty */
}

#define DAYS 8 /* action lines remembered: the days of one block */

static int append_new(PyObject *list, PyObject *item) {
    if (!item) return ERR;
    int r = PyList_Append(list, item);
    Py_DECREF(item);
    return r ? ERR : OK;
}

static PyObject *Fast_encode(Fast *f, PyObject *args) {
    PyObject *lines, *action;
    int skip_blank;
    if (!PyArg_ParseTuple(args, "OOp", &lines, &action, &skip_blank)) return NULL;
    PyObject *seq = PySequence_Fast(lines, "encode() takes a sequence of lines");
    if (!seq) return NULL;
    long long days[DAYS];
    PyObject *acts[DAYS] = {NULL};
    int ndays = 0, next_day = 0;
    PyObject *ids = PyList_New(0), *times = PyList_New(0), *sizes = PyList_New(0), *left = PyList_New(0);
    PyObject *result = NULL;
    Buf own = {0}, *blk = f->busy ? &own : &f->block;
    int was_busy = f->busy;
    f->busy = 1;
    blk->len = 0;
    if (!ids || !times || !sizes || !left) goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *line = PySequence_Fast_GET_ITEM(seq, i), *id = NULL;
        if (skip_blank && PyBytes_Check(line) && blank(line)) continue;
        long long ms;
        int rc = was_busy ? FALLBACK : one(f, line, &id, &ms);
        if (rc == ERR) PyErr_Clear(); /* a failing callback: the Python path meets it again and says so */
        if (rc != OK) {
            if (append_new(left, Py_BuildValue("(nnn)", i, (Py_ssize_t)blk->len, PyList_GET_SIZE(ids))))
                goto done;
            continue;
        }
        long long day = ms / 86400000;
        PyObject *act = NULL;
        for (int d = 0; d < ndays && !act; d++)
            if (days[d] == day) act = acts[d];
        if (!act) {
            act = PyObject_CallFunction(action, "L", day);
            if (!act || (act != Py_None && !(PyTuple_Check(act) && PyTuple_GET_SIZE(act) == 2 &&
                                             PyBytes_Check(PyTuple_GET_ITEM(act, 0)) &&
                                             PyBytes_Check(PyTuple_GET_ITEM(act, 1))))) {
                if (act) PyErr_SetString(PyExc_TypeError, "action(day) must return (bytes, bytes) or None");
                Py_XDECREF(act);
                Py_DECREF(id);
                goto done;
            }
            int slot = ndays < DAYS ? ndays++ : next_day++ % DAYS;
            Py_XDECREF(acts[slot]);
            days[slot] = day, acts[slot] = act;
        }
        size_t start = blk->len;
        int bad = 0;
        if (act != Py_None) {
            PyObject *before = PyTuple_GET_ITEM(act, 0), *after = PyTuple_GET_ITEM(act, 1);
            Py_ssize_t idlen;
            const char *idstr = PyUnicode_AsUTF8AndSize(id, &idlen);
            bad = !idstr || put(blk, PyBytes_AS_STRING(before), (size_t)PyBytes_GET_SIZE(before)) ||
                  put_str(blk, idstr, (size_t)idlen) ||
                  put(blk, PyBytes_AS_STRING(after), (size_t)PyBytes_GET_SIZE(after));
        }
        if (bad || put(blk, f->out.p, f->out.len) || PUTLIT(blk, "\n")) {
            Py_DECREF(id);
            goto done; /* an exception is set */
        }
        if (append_new(ids, id) || append_new(times, PyLong_FromLongLong(ms)) ||
            append_new(sizes, PyLong_FromSize_t(blk->len - start)))
            goto done;
    }
    result = Py_BuildValue("(NOOOO)", PyBytes_FromStringAndSize(blk->len ? blk->p : "", (Py_ssize_t)blk->len), ids,
                           times, sizes, left);
done:
    for (int d = 0; d < ndays; d++) Py_XDECREF(acts[d]);
    Py_XDECREF(ids);
    Py_XDECREF(times);
    Py_XDECREF(sizes);
    Py_XDECREF(left);
    Py_DECREF(seq);
    PyMem_Free(own.p);
    f->busy = was_busy;
    if (!was_busy) {
        shrink(&f->out, 8u << 20);
        shrink(&f->block, 64u << 20);
    }
    return result;
}

static int copy_bytes(PyObject *o, Bytes *out) {
    char *s;
    Py_ssize_t n;
    if (!PyBytes_Check(o) || PyBytes_AsStringAndSize(o, &s, &n) < 0) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "rows: expected bytes");
        return ERR;
    }
    if (!(out->s = PyMem_Malloc((size_t)n + 1))) {
        PyErr_NoMemory();
        return ERR;
    }
    memcpy(out->s, s, (size_t)n);
    out->s[n] = 0;
    out->n = (size_t)n;
    return OK;
}

/* A tuple of at most max bytes into out; returns how many, or ERR. */
static int copy_all(PyObject *tuple, Bytes *out, int max, const char *what) {
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) > max) {
        PyErr_Format(PyExc_ValueError, "rows: %s must be a tuple of at most %d items", what, max);
        return ERR;
    }
    int n = (int)PyTuple_GET_SIZE(tuple);
    for (int i = 0; i < n; i++) TRY(copy_bytes(PyTuple_GET_ITEM(tuple, i), &out[i]));
    return n;
}

static void free_rows(Fast *f) {
    for (int i = 0; i < f->nrows; i++) {
        Row *row = &f->rows[i];
        for (int k = 0; k < row->keys.n; k++) PyMem_Free(row->keys.k[k].s);
        for (int s = 0; s < row->nsources; s++)
            for (int k = 0; k < row->sources[s].n; k++) PyMem_Free(row->sources[s].k[k].s);
        for (int s = 0; s < row->nstrings; s++) PyMem_Free(row->strings[s].s);
    }
    PyMem_Free(f->rows);
    f->rows = NULL;
    f->nrows = 0;
    f->nprefixes = 0;
    f->nobjects = 0;
    for (int i = 0; i < f->ndecode; i++) PyMem_Free(f->decode[i].s);
    f->ndecode = 0;
}

/* The ids of a path's prefixes in table (each interned on the way); the last one, or ERR. */
static int intern(Prefix *table, int *n, const Path *p, int *ids) {
    int parent = -1;
    for (int k = 0; k < p->n; k++) {
        int found = -1;
        for (int j = 0; j < *n && found < 0; j++)
            if (table[j].parent == parent && bytes_eq(table[j].key, &p->k[k])) found = j;
        if (found < 0) {
            if (*n == MAX_PREFIXES) {
                PyErr_Format(PyExc_ValueError, "rows: more than %d distinct paths", MAX_PREFIXES);
                return ERR;
            }
            found = (*n)++;
            table[found] = (Prefix){parent, &p->k[k]};
        }
        if (ids) ids[k] = found;
        parent = found;
    }
    return parent;
}

/* fields.native_rows(): (kind, alternative, keys, sources, strings, tag) per row. A table this
 * code cannot follow is refused here, loudly, rather than misread per record. */
static int load_rows(Fast *f, PyObject *rows, PyObject *decode) {
    free_rows(f);
    if (!PyTuple_Check(rows) || PyTuple_GET_SIZE(rows) > MAX_ROWS) {
        PyErr_Format(PyExc_ValueError, "rows must be a tuple of at most %d rows", MAX_ROWS);
        return ERR;
    }
    if (!(f->rows = PyMem_Calloc((size_t)PyTuple_GET_SIZE(rows) + 1, sizeof(Row)))) {
        PyErr_NoMemory();
        return ERR;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(rows); i++) {
        Row *row = &f->rows[f->nrows++];
        PyObject *keys, *sources, *strings;
        int alt;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(rows, i), "ipOOOi", &row->kind, &alt, &keys, &sources, &strings, &row->tag))
            return ERR;
        row->alt = alt;
        if (row->kind < K_STR || row->kind > K_TAGS || row->tag >= 32) {
            PyErr_Format(PyExc_ValueError, "row %zd: kind %d is not known to the native path", i, row->kind);
            return ERR;
        }
        if ((row->keys.n = copy_all(keys, row->keys.k, MAX_KEYS, "keys")) < 1) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "row %zd has no path", i);
            return ERR;
        }
        for (int k = 0; k < row->keys.n; k++) { /* written as "key": (the copy has room: its NUL) */
            Bytes *key = &row->keys.k[k];
            char *grown = PyMem_Realloc(key->s, key->n + 2);
            if (!grown) {
                PyErr_NoMemory();
                return ERR;
            }
            key->s = grown;
            key->s[key->n++] = ':';
            key->s[key->n] = 0;
        }
        if (intern(f->objects, &f->nobjects, &row->keys, row->key_ids) < 0) return ERR;
        if (!PyTuple_Check(sources) || PyTuple_GET_SIZE(sources) > MAX_SOURCES) {
            PyErr_Format(PyExc_ValueError, "row %zd: at most %d sources", i, MAX_SOURCES);
            return ERR;
        }
        for (Py_ssize_t s = 0; s < PyTuple_GET_SIZE(sources); s++) {
            Path *p = &row->sources[row->nsources++];
            if ((p->n = copy_all(PyTuple_GET_ITEM(sources, s), p->k, MAX_KEYS, "a source")) < 1) {
                if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "row %zd: an empty source", i);
                return ERR;
            }
            if ((row->source_ids[s] = intern(f->prefixes, &f->nprefixes, p, NULL)) < 0) return ERR;
        }
        if ((row->nstrings = copy_all(strings, row->strings, MAX_STRINGS, "strings")) < 0) return ERR;
        int need = row->kind == K_GEO ? 2 : (row->kind == K_OUTCOME || row->kind == K_PAYLOAD) ? 1 : 0;
        if (row->nsources < need || (row->kind == K_GEO && row->nsources != 2) ||
            ((row->kind == K_OUTCOME || row->kind == K_CONST) && row->nstrings < 1) ||
            (row->kind == K_OUTCOME && row->nstrings % 2 != 1)) {
            PyErr_Format(PyExc_ValueError, "row %zd: sources or strings do not fit kind %d", i, row->kind);
            return ERR;
        }
    }
    static const char *const names[3] = {"id", "key", "payload"};
    for (int e = 0; e < 3; e++) {
        f->envelope[e] = -1;
        Bytes name = {(char *)names[e], strlen(names[e])};
        for (int j = 0; j < f->nprefixes; j++)
            if (f->prefixes[j].parent < 0 && bytes_eq(f->prefixes[j].key, &name)) f->envelope[e] = j;
    }
    if ((f->ndecode = copy_all(decode, f->decode, MAX_DECODE, "decode")) < 0) {
        f->ndecode = 0;
        return ERR;
    }
    return OK;
}

static int Fast_init(Fast *f, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"verdict", "event", "location", "max_line_bytes", "rows", "decode", NULL};
    PyObject *verdict, *event, *location, *rows, *decode;
    Py_ssize_t max_line;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOnOO", kwlist, &verdict, &event, &location, &max_line, &rows,
                                     &decode))
        return -1;
    if (load_rows(f, rows, decode) < 0) return -1;
    Py_XSETREF(f->verdict, Py_NewRef(verdict));
    Py_XSETREF(f->event, Py_NewRef(event));
    Py_XSETREF(f->location, Py_NewRef(location));
    f->max_line = max_line;
    for (int i = 0; i < 3; i++) {
        Slot **s = i < 2 ? &f->verdicts[i] : &f->events;
        if (*s) {
            cache_clear(*s);
        } else if (!(*s = PyMem_Calloc(CACHE_SLOTS, sizeof(Slot)))) {
            PyErr_NoMemory();
            return -1;
        }
    }
    if (!f->pool && !(f->pool = PyMem_Malloc(POOL_BYTES))) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int Fast_traverse(Fast *f, visitproc visit, void *arg) {
    Py_VISIT(f->verdict);
    Py_VISIT(f->event);
    Py_VISIT(f->location);
    if (f->events)
        for (size_t i = 0; i < CACHE_SLOTS; i++) Py_VISIT(f->events[i].obj);
    return 0;
}

static int Fast_clear(Fast *f) {
    Py_CLEAR(f->verdict);
    Py_CLEAR(f->event);
    Py_CLEAR(f->location);
    cache_clear(f->events);
    return 0;
}

static void Fast_dealloc(Fast *f) {
    PyObject_GC_UnTrack(f);
    Fast_clear(f);
    for (int i = 0; i < 2; i++) {
        cache_clear(f->verdicts[i]);
        PyMem_Free(f->verdicts[i]);
    }
    PyMem_Free(f->events);
    free_rows(f);
    PyMem_Free(f->out.p);
    PyMem_Free(f->tmp.p);
    PyMem_Free(f->block.p);
    PyMem_Free(f->pool);
    Py_TYPE(f)->tp_free((PyObject *)f);
}

static PyMethodDef Fast_methods[] = {
    {"line", (PyCFunction)Fast_line, METH_O,
     "line(raw: bytes) -> (id, epoch_ms, document JSON) | None: None when Python must decide."},
    {"encode", (PyCFunction)Fast_encode, METH_VARARGS,
     "encode(lines, action, skip_blank) -> (block, ids, times, sizes, left): the lines framed with\n"
     "action(day) -> (before id, after id) | None, one after the other; left: (index, byte offset,\n"
     "document index) of each line Python must decide, in order."},
    {NULL},
};

static PyTypeObject FastType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "shipper.normalize._ecs.Fast",
    .tp_basicsize = sizeof(Fast),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Logto JSON line -> ECS document JSON, for the records it recognises (else None).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Fast_init,
    .tp_traverse = (traverseproc)Fast_traverse,
    .tp_clear = (inquiry)Fast_clear,
    .tp_dealloc = (destructor)Fast_dealloc,
    .tp_methods = Fast_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_ecs", .m_doc = "The normalizer's native path.", .m_size = -1};

PyMODINIT_FUNC PyInit__ecs(void) {
    init_escapes();
    if (PyType_Ready(&FastType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Fast", (PyObject *)&FastType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddStringConstant(m, "YYJSON_VERSION", YYJSON_VERSION_STRING) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
