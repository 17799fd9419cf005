/* Writing (parts of) the payload with Masker's rules, asked of Python once per key.
 *
 * Part of ecs.c, which includes these files in order into one translation unit (so every call
 * can be inlined); each uses what the files before it define. */

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
