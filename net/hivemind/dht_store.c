/*
 * Record storage of the Hivemind DHT (include/kw/net/hivemind_dht.h, part 3): the rules of
 * learning-at-home/hivemind @ 4bd43b7 `hivemind/utils/timed_storage.py` (TimedStorage),
 * `hivemind/dht/storage.py` (DHTLocalStorage, DictionaryDHTValue) and the IS_DICTIONARY
 * branch of `hivemind/dht/protocol.py` rpc_store, in fixed-size cells from the arena.
 *
 * A cell is one plain record (key, value, expiration), one dictionary record (key, outer
 * expiration, latest_expiration_time, a list of its entries in insertion order) or one
 * dictionary entry (msgpack subkey bytes || value bytes, its expiration). Expired cells are
 * dropped at the start of every operation (hivemind drops them lazily on access; the result
 * is the same). Lookups scan the cells: tables are small (Kconfig), and nothing here runs
 * per byte of traffic.
 *
 * Differences from hivemind, each for bounded memory or against a plain bug there:
 *  - the main tier refuses a store when its cells are used up (hivemind's grows without
 *    bound); the cache tier drops the earliest-expiring other record to make room before
 *    storing (hivemind stores, then drops the earliest-expiring, possibly the new one);
 *  - a NaN expiration is refused: hivemind stores it, and since no comparison with NaN is
 *    true, the key can then never be replaced and never expires;
 *  - a rejected store leaves the live record's expiry alone (hivemind's TimedStorage.store
 *    overwrites its expiry bookkeeping before deciding, so a stale store can make a live
 *    record vanish at the stale time);
 *  - subkeys are compared by their msgpack bytes (hivemind compares the Python objects, so
 *    1 and 1.0, or a non-minimal int encoding, would be one subkey there, two here);
 *  - a DictionaryDHTValue received whole is read entry by entry: its `maxsize` field is
 *    ignored (hivemind would first trim the received dictionary to maxsize entries) and a
 *    subkey repeated inside it is stored twice in order (hivemind keeps the newer one first).
 *
 * Owner: net/hivemind. All cells come from the arena at init; nothing allocates later.
 */
#include <math.h>
#include <string.h>

#include <kw/arena.h>
#include <kw/err.h>
#include <kw/net/hivemind_dht.h>
#include <kw/net/msgpack.h>

enum { FREE = 0, REGULAR, DICT, SUB };

struct kw_hm_store_cell {
	struct kw_hm_dhtid key;   /* REGULAR, DICT */
	double exp;               /* record or entry expiration */
	double latest;            /* DICT: latest_expiration_time */
	int32_t parent;           /* SUB: its DICT cell */
	int32_t first, last;      /* DICT: entries in insertion order */
	int32_t next;             /* SUB: the next entry */
	uint32_t n_sub;           /* DICT: entries */
	uint32_t sub_len, val_len;
	uint8_t kind;
};

int kw_hm_store_init(struct kw_hm_store *s, uint32_t n_cells, uint32_t cell_bytes,
		     uint32_t dict_max, bool evict, struct kw_arena *arena)
{
	if (!n_cells || !cell_bytes || !dict_max)
		return -KW_EINVAL;
	memset(s, 0, sizeof(*s));
	s->cells = kw_arena_alloc(arena, sizeof(*s->cells) * n_cells, 8);
	s->data = kw_arena_alloc(arena, (size_t)n_cells * cell_bytes, 8);
	if (!s->cells || !s->data)
		return -KW_ENOMEM;
	s->n_cells = n_cells;
	s->cell_bytes = cell_bytes;
	s->dict_max = dict_max;
	s->evict = evict;
	return 0;
}

static uint8_t *cell_data(struct kw_hm_store *s, int32_t i)
{
	return s->data + (size_t)i * s->cell_bytes;
}

static void free_cell(struct kw_hm_store *s, int32_t i)
{
	s->cells[i].kind = FREE;
	s->used--;
}

/* Drops a whole record (a dictionary with its entries). */
static void drop_record(struct kw_hm_store *s, int32_t i)
{
	struct kw_hm_store_cell *c = &s->cells[i];

	if (c->kind == DICT)
		for (int32_t j = c->first; j >= 0; j = s->cells[j].next)
			free_cell(s, j);
	free_cell(s, i);
}

/* Unlinks entry j from its dictionary and frees it. */
static void drop_entry(struct kw_hm_store *s, int32_t j)
{
	struct kw_hm_store_cell *d = &s->cells[s->cells[j].parent];
	int32_t prev = -1;

	for (int32_t k = d->first; k >= 0 && k != j; k = s->cells[k].next)
		prev = k;
	if (prev < 0)
		d->first = s->cells[j].next;
	else
		s->cells[prev].next = s->cells[j].next;
	if (d->last == j)
		d->last = prev;
	d->n_sub--;
	free_cell(s, j);
}

/* TimedStorage._remove_outdated: everything whose expiration is before now. */
static void purge(struct kw_hm_store *s, double now)
{
	for (uint32_t i = 0; i < s->n_cells; i++) {
		struct kw_hm_store_cell *c = &s->cells[i];

		if ((c->kind == REGULAR || c->kind == DICT) && c->exp < now) {
			drop_record(s, (int32_t)i);
			s->stats.expired++;
		}
	}
	for (uint32_t i = 0; i < s->n_cells; i++)
		if (s->cells[i].kind == SUB && s->cells[i].exp < now)
			drop_entry(s, (int32_t)i);
}

static int32_t find_top(const struct kw_hm_store *s, const struct kw_hm_dhtid *key)
{
	for (uint32_t i = 0; i < s->n_cells; i++) {
		const struct kw_hm_store_cell *c = &s->cells[i];

		if ((c->kind == REGULAR || c->kind == DICT) && !kw_hm_dhtid_cmp(&c->key, key))
			return (int32_t)i;
	}
	return -1;
}

/* A free cell; the cache tier drops the earliest-expiring record other than `keep`. */
static int32_t alloc_cell(struct kw_hm_store *s, int32_t keep)
{
	for (;;) {
		int32_t victim = -1;

		for (uint32_t i = 0; i < s->n_cells; i++)
			if (s->cells[i].kind == FREE) {
				memset(&s->cells[i], 0, sizeof(s->cells[i]));
				s->cells[i].first = s->cells[i].last = s->cells[i].next = -1;
				s->used++;
				return (int32_t)i;
			}
		if (!s->evict)
			break;
		for (uint32_t i = 0; i < s->n_cells; i++) {
			const struct kw_hm_store_cell *c = &s->cells[i];

			if ((c->kind == REGULAR || c->kind == DICT) && (int32_t)i != keep &&
			    (victim < 0 || c->exp < s->cells[victim].exp))
				victim = (int32_t)i;
		}
		if (victim < 0)
			break;
		drop_record(s, victim);
		s->stats.evicted++;
	}
	s->stats.full++;
	return -1;
}

static void set_bytes(struct kw_hm_store *s, int32_t i, const uint8_t *sub, size_t sub_len,
		      const uint8_t *val, size_t len)
{
	uint8_t *d = cell_data(s, i);

	if (sub_len)
		memcpy(d, sub, sub_len);
	if (len)
		memcpy(d + sub_len, val, len);
	s->cells[i].sub_len = (uint32_t)sub_len;
	s->cells[i].val_len = (uint32_t)len;
}

int kw_hm_store_put(struct kw_hm_store *s, const struct kw_hm_dhtid *key, const uint8_t *val,
		    size_t len, double exp, double now)
{
	int32_t t;

	if (isnan(exp) || (len && !val)) {
		s->stats.rejected_bad++;
		return -KW_EINVAL;
	}
	if (exp < now) {
		s->stats.rejected_expired++;
		return 0;
	}
	if (len > s->cell_bytes) {
		s->stats.too_large++;
		return -KW_EMSGSIZE;
	}
	purge(s, now);
	t = find_top(s, key);
	if (t >= 0) {
		struct kw_hm_store_cell *c = &s->cells[t];

		if (!(c->exp < exp)) {           /* strictly newer wins */
			s->stats.rejected_older++;
			return 0;
		}
		if (c->kind == DICT) {           /* a later plain value replaces a dictionary */
			for (int32_t j = c->first; j >= 0; j = s->cells[j].next)
				free_cell(s, j);
			c->first = c->last = -1;
			c->n_sub = 0;
			c->kind = REGULAR;
		}
	} else {
		t = alloc_cell(s, -1);
		if (t < 0)
			return -KW_ENOSPC;
		s->cells[t].kind = REGULAR;
		s->cells[t].key = *key;
	}
	s->cells[t].exp = exp;
	set_bytes(s, t, NULL, 0, val, len);
	s->stats.stored++;
	return 1;
}

static int32_t find_entry(struct kw_hm_store *s, int32_t d, const uint8_t *sub, size_t sub_len)
{
	for (int32_t j = s->cells[d].first; j >= 0; j = s->cells[j].next)
		if (s->cells[j].sub_len == sub_len && !memcmp(cell_data(s, j), sub, sub_len))
			return j;
	return -1;
}

/* Appends a new entry to dictionary d. */
static int add_entry(struct kw_hm_store *s, int32_t d, const uint8_t *sub, size_t sub_len,
		     const uint8_t *val, size_t len, double exp)
{
	int32_t j;

	if (s->cells[d].n_sub >= s->dict_max) {
		s->stats.dict_full++;
		return -KW_ELIMIT;
	}
	j = alloc_cell(s, d);
	if (j < 0)
		return -KW_ENOSPC;
	s->cells[j].kind = SUB;
	s->cells[j].parent = d;
	s->cells[j].exp = exp;
	set_bytes(s, j, sub, sub_len, val, len);
	if (s->cells[d].last >= 0)
		s->cells[s->cells[d].last].next = j;
	else
		s->cells[d].first = j;
	s->cells[d].last = j;
	s->cells[d].n_sub++;
	return 1;
}

int kw_hm_store_put_subkey(struct kw_hm_store *s, const struct kw_hm_dhtid *key,
			   const uint8_t *subkey, size_t sub_len, const uint8_t *val, size_t len,
			   double exp, double now)
{
	int32_t t, j;
	int r;

	if (isnan(exp) || (len && !val) || !sub_len || !subkey) {
		s->stats.rejected_bad++;
		return -KW_EINVAL;
	}
	if (sub_len + len > s->cell_bytes) {
		s->stats.too_large++;
		return -KW_EMSGSIZE;
	}
	if (exp < now) {        /* every branch of store_subkey refuses it */
		s->stats.rejected_expired++;
		return 0;
	}
	purge(s, now);
	t = find_top(s, key);
	if (t < 0 || (s->cells[t].kind == REGULAR && exp > s->cells[t].exp)) {
		/* case 1 and 3: a new dictionary {subkey: (value, exp)} with outer exp */
		if (t < 0) {
			t = alloc_cell(s, -1);
			if (t < 0)
				return -KW_ENOSPC;
			s->cells[t].key = *key;
		}
		s->cells[t].kind = DICT;
		s->cells[t].exp = exp;
		s->cells[t].latest = exp;
		s->cells[t].first = s->cells[t].last = -1;
		s->cells[t].n_sub = 0;
		s->cells[t].val_len = s->cells[t].sub_len = 0;
		r = add_entry(s, t, subkey, sub_len, val, len, exp);
		if (r < 0) {
			drop_record(s, t);   /* nothing half-made stays */
			return r;
		}
		s->stats.stored++;
		return 1;
	}
	if (s->cells[t].kind == REGULAR) {   /* a plain value with a later or equal expiration */
		s->stats.rejected_older++;
		return 0;
	}
	/* case 2: a dictionary; refresh its outer expiration, then the per-subkey rule */
	if (exp > s->cells[t].latest) {
		s->cells[t].exp = exp;
		s->cells[t].latest = exp;
	}
	j = find_entry(s, t, subkey, sub_len);
	if (j >= 0) {
		if (!(s->cells[j].exp < exp)) {
			s->stats.rejected_older++;
			return 0;
		}
		s->cells[j].exp = exp;     /* keeps its place in the insertion order */
		set_bytes(s, j, subkey, sub_len, val, len);
		s->stats.stored++;
		return 1;
	}
	r = add_entry(s, t, subkey, sub_len, val, len, exp);
	if (r > 0)
		s->stats.stored++;
	return r;
}

/* ---- DictionaryDHTValue (ext 0x50) --------------------------------------------------- */

struct dict_entry {
	const uint8_t *sub;
	size_t sub_len;
	const uint8_t *val;
	size_t len;
	double exp;
};

static int number(const struct kw_mp_item *it, double *out)
{
	switch (it->type) {
	case KW_MP_UINT:
		*out = (double)it->v.u;
		return 0;
	case KW_MP_INT:
		*out = (double)it->v.i;
		return 0;
	case KW_MP_FLOAT:
		*out = it->v.f;
		return 0;
	default:
		return -KW_EBADMSG;
	}
}

static int bad(const char **why, const char *w)
{
	*why = w;
	return -KW_EBADMSG;
}

/* Reads entry i (of a validated reader positioned before it). */
static int read_entry(struct kw_mp_reader *r, struct dict_entry *e, const char **why)
{
	struct kw_mp_item it;
	uint32_t start;
	int err;

	if (kw_mp_read(r, &it) || it.type != KW_MP_ARRAY || it.len != 3)
		return bad(why, "dictionary entry is not [subkey, value, expiration]");
	start = r->pos;
	if (kw_mp_read(r, &it))
		return bad(why, r->why);
	if (it.type == KW_MP_ARRAY || it.type == KW_MP_MAP)
		return bad(why, "dictionary subkey is a list or map (unhashable in Python)");
	if ((err = kw_mp_skip(r, &it)))
		return bad(why, r->why);
	e->sub = r->buf + start;
	e->sub_len = r->pos - start;
	if (kw_mp_read(r, &it) || it.type != KW_MP_BIN)
		return bad(why, "dictionary value is not bin");
	e->val = it.data;
	e->len = it.len;
	if (kw_mp_read(r, &it) || number(&it, &e->exp))
		return bad(why, "dictionary expiration is not a number");
	return 0;
}

/* Positions r before the entries; *n receives their count. A count or size beyond the msgpack
 * reader's own bounds (KW_NET_MSGPACK_MAX_COUNT, _MAX_BYTES) is -KW_ELIMIT like a count
 * beyond dict_max. */
static int open_dict(struct kw_mp_reader *r, const uint8_t *buf, size_t len, uint32_t *n,
		     const char **why)
{
	struct kw_mp_item it;
	int err;

	if (kw_mp_reader_init(r, buf, len, KW_MP_ENTER_EXT | KW_MP_STRICT_MAP_KEYS))
		return bad(why, "DictionaryDHTValue larger than 4 GiB");
	err = kw_mp_read(r, &it);
	if (err == -KW_ELIMIT) {
		*why = "dictionary larger than KW_NET_MSGPACK_MAX_BYTES";
		return err;
	}
	if (err || it.type != KW_MP_EXT || it.ext_type != 0x50)
		return bad(why, "not a DictionaryDHTValue (ext 0x50)");
	if (kw_mp_read(r, &it) || it.type != KW_MP_ARRAY || it.len != 3)
		return bad(why, "DictionaryDHTValue is not [maxsize, latest, items]");
	if (kw_mp_skip_value(r) || kw_mp_skip_value(r))   /* maxsize, latest_expiration_time */
		return bad(why, r->why);
	err = kw_mp_read(r, &it);
	if (err == -KW_ELIMIT) {
		*why = "dictionary holds more subkeys than KW_NET_MSGPACK_MAX_COUNT";
		return err;
	}
	if (err || it.type != KW_MP_ARRAY)
		return bad(why, "DictionaryDHTValue items are not a list");
	*n = it.len;
	return 0;
}

int kw_hm_store_put_dict(struct kw_hm_store *s, const struct kw_hm_dhtid *key,
			 const uint8_t *dict, size_t len, double now, const char **why)
{
	static const char *ok = "";
	struct kw_mp_reader r;
	struct dict_entry e;
	uint32_t n;
	int err;

	if (!why)
		why = &ok;
	*why = "";
	if ((err = open_dict(&r, dict, len, &n, why))) {
		if (err == -KW_ELIMIT) {
			s->stats.dict_full++;
			return err;
		}
		goto bad;
	}
	if (n > s->dict_max) {
		*why = "dictionary holds more subkeys than KW_NET_HIVEMIND_DHT_DICT_MAX";
		s->stats.dict_full++;
		return -KW_ELIMIT;
	}
	for (uint32_t i = 0; i < n; i++)    /* whole value checked before anything is stored */
		if ((err = read_entry(&r, &e, why)))
			goto bad;
	if (kw_mp_reader_done(&r)) {
		err = bad(why, "bytes after the DictionaryDHTValue");
		goto bad;
	}
	(void)open_dict(&r, dict, len, &n, why);
	for (uint32_t i = 0; i < n; i++) {
		(void)read_entry(&r, &e, why);
		if (isnan(e.exp) || e.exp < now)
			continue;                 /* items() drops the expired */
		err = kw_hm_store_put_subkey(s, key, e.sub, e.sub_len, e.val, e.len, e.exp, now);
		if (err <= 0) {                   /* all() stops at the first refusal */
			if (err == -KW_ELIMIT)
				*why = "dictionary full (KW_NET_HIVEMIND_DHT_DICT_MAX)";
			return err;
		}
	}
	return 1;
bad:
	s->stats.rejected_bad++;
	return err;
}

/* ---- reading ------------------------------------------------------------------------- */

int kw_hm_store_get(struct kw_hm_store *s, const struct kw_hm_dhtid *key, double now,
		    struct kw_hm_store_found *f)
{
	int32_t t;

	memset(f, 0, sizeof(*f));
	purge(s, now);
	t = find_top(s, key);
	if (t < 0)
		return 0;
	f->expiration = s->cells[t].exp;
	if (s->cells[t].kind == REGULAR) {
		f->type = KW_HM_DHT_FOUND_REGULAR;
		f->value = cell_data(s, t);
		f->len = s->cells[t].val_len;
	} else {
		f->type = KW_HM_DHT_FOUND_DICTIONARY;
		f->n_subkeys = s->cells[t].n_sub;
	}
	return 0;
}

int kw_hm_store_get_subkey(struct kw_hm_store *s, const struct kw_hm_dhtid *key, uint32_t i,
			   double now, const uint8_t **subkey, size_t *sub_len,
			   const uint8_t **val, size_t *len, double *exp)
{
	int32_t t, j;

	purge(s, now);
	t = find_top(s, key);
	if (t < 0 || s->cells[t].kind != DICT)
		return -KW_ENOENT;
	for (j = s->cells[t].first; j >= 0 && i; j = s->cells[j].next)
		i--;
	if (j < 0)
		return -KW_ENOENT;
	*subkey = cell_data(s, j);
	*sub_len = s->cells[j].sub_len;
	*val = cell_data(s, j) + s->cells[j].sub_len;
	*len = s->cells[j].val_len;
	*exp = s->cells[j].exp;
	return 0;
}

/* Appends msgpack bytes that are already one encoded value (a stored subkey). The writer has
 * no such put; this keeps its sticky-error contract. */
static void put_raw(struct kw_mp_writer *w, const uint8_t *p, size_t n)
{
	if (w->err)
		return;
	if (w->cap - w->len < n) {
		w->err = -KW_ENOSPC;
		return;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

long kw_hm_store_pack_dict(struct kw_hm_store *s, const struct kw_hm_dhtid *key, double now,
			   uint8_t *buf, size_t cap)
{
	struct kw_mp_writer w;
	size_t mark;
	int32_t t;

	purge(s, now);
	t = find_top(s, key);
	if (t < 0 || s->cells[t].kind != DICT)
		return -KW_ENOENT;
	kw_mp_writer_init(&w, buf, cap);
	kw_mp_put_ext_begin(&w, 0x50, &mark);
	kw_mp_put_array(&w, 3);
	kw_mp_put_float64(&w, INFINITY);          /* maxsize: float("inf") */
	kw_mp_put_float64(&w, s->cells[t].latest);
	kw_mp_put_array(&w, s->cells[t].n_sub);
	for (int32_t j = s->cells[t].first; j >= 0; j = s->cells[j].next) {
		kw_mp_put_array(&w, 3);
		put_raw(&w, cell_data(s, j), s->cells[j].sub_len);
		kw_mp_put_bin(&w, cell_data(s, j) + s->cells[j].sub_len, s->cells[j].val_len);
		kw_mp_put_float64(&w, s->cells[j].exp);
	}
	if (!w.err)
		kw_mp_put_ext_end(&w, mark);
	return kw_mp_writer_finish(&w);
}

uint32_t kw_hm_store_count(struct kw_hm_store *s, double now)
{
	uint32_t n = 0;

	purge(s, now);
	for (uint32_t i = 0; i < s->n_cells; i++)
		if (s->cells[i].kind == REGULAR || s->cells[i].kind == DICT)
			n++;
	return n;
}

void kw_hm_store_clear(struct kw_hm_store *s)
{
	for (uint32_t i = 0; i < s->n_cells; i++)
		s->cells[i].kind = FREE;
	s->used = 0;
}

int kw_hm_store_key_at(struct kw_hm_store *s, uint32_t i, double now, struct kw_hm_dhtid *key)
{
	purge(s, now);
	for (uint32_t c = 0; c < s->n_cells; c++) {
		if (s->cells[c].kind != REGULAR && s->cells[c].kind != DICT)
			continue;
		if (i-- == 0) {
			*key = s->cells[c].key;
			return 0;
		}
	}
	return -KW_ENOENT;
}
