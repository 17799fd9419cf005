/* The field table (shipper/normalize/fields.py) as native_rows() gives it: the types.
 *
 * Part of ecs.c, which includes these files in order into one translation unit (so every call
 * can be inlined); each uses what the files before it define. */

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
