/*
 * net/kad private: what the record store needs from the validators beyond the public
 * kw_kad_validate / kw_kad_select (include/kw/net/kad_store.h).
 */
#ifndef KW_NET_KAD_RECORD_H
#define KW_NET_KAD_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The signed-message prefix of a /kwaai/ record (doc/net-kad.md "Records and providers"). */
#define KW_KAD_KWAAI_DOMAIN "kwaai-record:"

/*
 * kw_kad_validate with the expiry check optional (check_time false: kw_kad_select, which has
 * no clock). *expiry_unix_ms (may be NULL) receives the /kwaai/ envelope's expiry, 0 for a
 * record without one (/pk/).
 */
int kw_kad_validate_ex(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
		       uint64_t now_unix_ms, bool check_time, uint64_t *expiry_unix_ms,
		       char *err, size_t errcap);

/*
 * Orders two values for the same key that both validated: > 0 when a should be kept over b,
 * < 0 when b should, 0 when they are the same record. /kwaai/: higher sequence number, then
 * the lexicographically larger envelope; /pk/: always 0 (every valid value names the one
 * key the peer ID is made from).
 */
int kw_kad_record_cmp(const uint8_t *key, size_t klen, const uint8_t *a, size_t alen,
		      const uint8_t *b, size_t blen);

#endif /* KW_NET_KAD_RECORD_H */
