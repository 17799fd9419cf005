/* Loading the field table at start-up, refusing loudly what this code cannot follow.
 *
 * Part of ecs.c, which includes these files in order into one translation unit (so every call
 * can be inlined); each uses what the files before it define. */

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
