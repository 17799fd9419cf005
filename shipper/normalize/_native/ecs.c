/* The normalizer's native path: one Logto JSON line -> (id, epoch ms, ECS document as JSON).
 *
 * It gives the same bytes as shipper.normalize.document.Normalizer.line followed by
 * orjson.dumps (tests/unit/test_native.py checks that on generated and on hypothesis-made
 * records) for the records it recognises, without building a Python object per field: the Python
 * path spends most of its time creating and freeing dicts and strings. Whatever it does not
 * handle exactly the Python way answers None and the Python normalizer decides: invalid lines and
 * every other rejection, ISO-8601 forms it does not parse, floats anywhere, duplicate keys, a
 * string `payload`, non-ASCII text where Python's Unicode rules (strip, lower) would matter.
 *
 * It names no field: the document's shape is the field table of shipper/normalize/fields.py,
 * received at start-up (rows.h) and interpreted per record (assemble.h). The other rules stay in
 * Python too, asked once per distinct key and cached here: which keys are secrets
 * (Masker._verdict), the key -> ECS event fields (Normalizer._event_json), and the parsing and
 * formatting of geo coordinates (location_json). This file holds the Python type; the parts it
 * includes hold one concept each (buffer, values, cache, table, masked, assemble, rows).
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

#include "buffer.h"
#include "values.h"
#include "cache.h"
#include "table.h"

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
    int watched; /* the last record built: its key and outcome are ones detections read */
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
    if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) < 2 || PyTuple_GET_SIZE(r) > 3 ||
        !PyBytes_Check(PyTuple_GET_ITEM(r, 0)) || !PyBytes_Check(PyTuple_GET_ITEM(r, 1))) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_TypeError, "event callback must return (bytes, bytes[, bool])");
        return NULL;
    }
    if (s) cache_fill(s, lookup, n + 1, h, 0, r);
    return r;
}

#include "masked.h"
#include "assemble.h"

/* One line (raw, n bytes) into f->out; OK with its id (a new str) and time, FALLBACK, or ERR. */
static int one_raw(Fast *f, const char *raw, Py_ssize_t n, PyObject **id_out, long long *ms_out) {
    if (n > f->max_line) return FALLBACK;
    yyjson_alc alc;
    yyjson_doc *doc = NULL;
    if (yyjson_alc_pool_init(&alc, f->pool, POOL_BYTES)) doc = yyjson_read_opts((char *)raw, (size_t)n, 0, &alc, NULL);
    if (!doc) doc = yyjson_read_opts((char *)raw, (size_t)n, 0, NULL, NULL); /* too big for the pool, or invalid */
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

static int one(Fast *f, PyObject *line, PyObject **id_out, long long *ms_out) {
    if (!PyBytes_Check(line)) return FALLBACK;
    return one_raw(f, PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line), id_out, ms_out);
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

static int blank(const char *s, Py_ssize_t n) {
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
    /* A block (bytes: lines, each ending in a newline but perhaps the last) is read in place; a
       worker would otherwise split its request into a bytes object per line (~1 us a line). */
    const char *bp = PyBytes_Check(lines) ? PyBytes_AS_STRING(lines) : NULL;
    Py_ssize_t blen = bp ? PyBytes_GET_SIZE(lines) : 0, pos = 0;
    PyObject *seq = bp ? NULL : PySequence_Fast(lines, "encode() takes a block or a sequence of lines");
    if (!bp && !seq) return NULL;
    long long days[DAYS];
    PyObject *acts[DAYS] = {NULL};
    int ndays = 0, next_day = 0;
    PyObject *ids = PyList_New(0), *times = PyList_New(0), *sizes = PyList_New(0), *left = PyList_New(0);
    PyObject *watched = PyList_New(0);
    PyObject *result = NULL;
    Buf own = {0}, *blk = f->busy ? &own : &f->block;
    int was_busy = f->busy;
    f->busy = 1;
    blk->len = 0;
    if (!ids || !times || !sizes || !left || !watched) goto done;
    Py_ssize_t n = bp ? PY_SSIZE_T_MAX : PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *id = NULL;
        const char *raw = NULL;
        Py_ssize_t len = 0;
        if (bp) {
            if (pos >= blen) break;
            const char *nl = memchr(bp + pos, '\n', (size_t)(blen - pos));
            raw = bp + pos;
            len = nl ? nl - raw : blen - pos;
            pos += len + 1;
        } else {
            PyObject *line = PySequence_Fast_GET_ITEM(seq, i);
            if (PyBytes_Check(line)) raw = PyBytes_AS_STRING(line), len = PyBytes_GET_SIZE(line);
        }
        if (skip_blank && raw && blank(raw, len)) continue;
        long long ms;
        int rc = was_busy || !raw ? FALLBACK : one_raw(f, raw, len, &id, &ms);
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
        if (f->watched && append_new(watched, PyLong_FromSsize_t(PyList_GET_SIZE(ids)))) {
            Py_DECREF(id);
            goto done;
        }
        if (append_new(ids, id) || append_new(times, PyLong_FromLongLong(ms)) ||
            append_new(sizes, PyLong_FromSize_t(blk->len - start)))
            goto done;
    }
    result = Py_BuildValue("(NOOOOO)", PyBytes_FromStringAndSize(blk->len ? blk->p : "", (Py_ssize_t)blk->len), ids,
                           times, sizes, left, watched);
done:
    for (int d = 0; d < ndays; d++) Py_XDECREF(acts[d]);
    Py_XDECREF(ids);
    Py_XDECREF(times);
    Py_XDECREF(sizes);
    Py_XDECREF(left);
    Py_XDECREF(watched);
    Py_XDECREF(seq);
    PyMem_Free(own.p);
    f->busy = was_busy;
    if (!was_busy) {
        shrink(&f->out, 8u << 20);
        shrink(&f->block, 64u << 20);
    }
    return result;
}

#include "rows.h"

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
     "encode(lines, action, skip_blank) -> (block, ids, times, sizes, left, watched): the lines (a\n"
     "sequence of bytes, or one bytes block of lines each ending in a newline but perhaps the last) framed\n"
     "with action(day) -> (before id, after id) | None, one after the other; left: (index, byte offset,\n"
     "document index) of each line Python must decide, in order; watched: the document indices whose\n"
     "key and outcome the event callback marked (its third answer)."},
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
