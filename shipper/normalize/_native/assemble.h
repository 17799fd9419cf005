/* One record: the field table interpreted, row by row, into the document's JSON.
 *
 * Part of ecs.c, which includes these files in order into one translation unit (so every call
 * can be inlined); each uses what the files before it define. */

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
    /* the rules' third answer: detections read this record (encode lists it) */
    f->watched = r.parts && PyTuple_GET_SIZE(r.parts) == 3 && PyTuple_GET_ITEM(r.parts, 2) == Py_True;
    Py_XDECREF(r.parts);
    if (rc == OK) {
        *id_out = id;
        *ms_out = ms;
    }
    return rc == ERR || PyErr_Occurred() ? ERR : rc;
}
