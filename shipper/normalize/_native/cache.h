/* Caches of Python's answers (secret verdicts, event fields per key), bounded.
 *
 * Part of ecs.c, which includes these files in order into one translation unit (so every call
 * can be inlined); each uses what the files before it define. */

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
