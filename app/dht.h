/*
 * The DHT operations `kwnode dht ...` runs, shared by the standalone command (app/cmd_dht.c,
 * a transient node) and the control socket of a running node (app/control.c). Private to app/.
 *
 * A request is parsed once, from the command line, into struct kw_dht_req (binary key,
 * value, multihash or peer id). It travels to a running node as one text line (hex fields),
 * and every result comes back as the same text lines whichever node ran it:
 *   stored N            put / provide: peers that accepted
 *   value HEX           get: the value
 *   provider PEERID     find-providers: one per provider
 *   addr MULTIADDR      find-peer: one per address, with /p2p/<peer-id>
 *   error TEXT          what went wrong
 *   exit N              last line: the command's exit code
 * kw_dht_print turns those lines into the command's output (doc/net-kad.md "Using the DHT").
 */
#ifndef KW_APP_DHT_H
#define KW_APP_DHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kw/net/kad.h>
#include <kw/net/key.h>
#include <kw/policy.h>

enum kw_dht_verb { KW_DHT_PUT, KW_DHT_GET, KW_DHT_PROVIDE, KW_DHT_FIND_PROVIDERS,
		   KW_DHT_FIND_PEER };

struct kw_dht_req {
	enum kw_dht_verb verb;
	uint16_t klen;                /* key or multihash */
	uint16_t vlen;
	uint8_t key[KW_KAD_KEY_MAX];
	uint8_t val[KW_KAD_VALUE_MAX];
	struct kw_peer_id peer;       /* find-peer */
};

/* The longest request line (put with the largest key and value, hex) and reply. */
#define KW_DHT_LINE_MAX  (16 + 2 * KW_KAD_KEY_MAX + 2 * KW_KAD_VALUE_MAX + 8)
#define KW_DHT_REPLY_MAX (2 * KW_KAD_VALUE_MAX + 64 + KW_KAD_MAX_PEERS * 80 + \
			  KW_KAD_MAX_ADDRS * (KW_MADDR_TEXT_MAX + 1))

#define KW_DHT_KEY_HEX   1u   /* kw_dht_req_parse flags: KEY is hex bytes */
#define KW_DHT_VALUE_HEX 2u   /* put's VALUE is hex bytes (values with NUL or newline) */

/*
 * Parses `verb args...` as typed after `kwnode dht` (flags: KW_DHT_KEY_HEX, KW_DHT_VALUE_HEX).
 * Return: 0; -KW_EINVAL with err saying what is wrong (usage error).
 */
int kw_dht_req_parse(struct kw_dht_req *r, const char *verb, int argc, char **argv, unsigned flags,
		     char *err, size_t errcap);
/* One request line ("dht VERB HEX [HEX]\n") for the control socket. Return: length, -KW_ENOSPC. */
long kw_dht_req_encode(const struct kw_dht_req *r, char *out, size_t cap);
/* Parses a line from kw_dht_req_encode (without the '\n'). Return: 0, -KW_EINVAL (err set). */
int kw_dht_req_decode(struct kw_dht_req *r, const char *line, char *err, size_t errcap);
/* Starts the operation on k; cb runs once, on the loop. Return: kw_kad_*'s codes. */
int kw_dht_req_start(struct kw_kad *k, const struct kw_dht_req *r, kw_kad_done_fn cb, void *user);
/* Writes the reply lines for result `res` of r (ending in "exit N\n"). Return: the length. */
size_t kw_dht_format(const struct kw_dht_req *r, const struct kw_kad_result *res, char *out,
		     size_t cap);
/* Reply lines for a failure before the operation ran. Return: the length. */
size_t kw_dht_format_error(const char *msg, int code, char *out, size_t cap);
/*
 * Prints reply lines: values raw to stdout, peers and addresses one per line, errors to
 * stderr prefixed "kwnode dht: ". Return: the exit code of the last "exit" line (1 if none).
 */
int kw_dht_print(const char *lines, size_t len);

/* <data_dir>/control.sock. Return: 0, -KW_ENAMETOOLONG-like -KW_ERANGE when it does not fit. */
int kw_control_path(const char *data_dir, char *out, size_t cap);

/*
 * The DHT as a drain client of the contribution policy (kw/policy.h, doc/board.md). When the
 * policy enters draining, the node withdraws from the DHT (kw_kad_withdraw: it stops answering
 * as a server and stops republishing its records and provider records) and reports drained
 * once its announcements in flight have ended; when the policy enters contributing again it
 * rejoins (kw_kad_rejoin). Owned by the caller (the `dht_drain` init entry takes it from the
 * node arena); it must stay registered until kw_policy_stop. The counters are for tests and
 * status pages.
 */
struct kw_dht_drain {
	struct kw_policy_client client;    /* registered with the policy; client.arg = this */
	struct kw_policy *policy;          /* borrowed */
	struct kw_kad *kad;                /* borrowed */
	uint32_t drains, drained, resumes; /* drain calls, "drained" reports, resume calls */
};

/*
 * Registers `d` with p for k. A policy that is not contributing at that moment (paused at
 * start: on battery, hot, quiet hours) withdraws the DHT at once, without a drain to report.
 * Return: 0, -KW_EINVAL (a NULL argument).
 */
int kw_dht_drain_attach(struct kw_dht_drain *d, struct kw_policy *p, struct kw_kad *k);

#endif /* KW_APP_DHT_H */
