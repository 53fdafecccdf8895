/*
 * `kwnode hivemind` against a running node (app/cmd_hivemind.c, app/control.c): the request
 * line the command sends over <data_dir>/control.sock and the reply lines it gets back.
 * Private to app/.
 *
 * Request, one line: "hivemind VERB FLAGS NUM_BLOCKS EXPIRATION KEY SUBKEY VALUE\n"
 *   VERB        get | store | ping | servers
 *   FLAGS       "-" or, in this order and each once, L (--latest), j (--json), x (--hex),
 *               k (--subkeys)
 *   NUM_BLOCKS  decimal 0..KW_HM_REQ_BLOCKS_MAX (servers --num-blocks; 0: find out)
 *   EXPIRATION  decimal seconds 1..31536000 (store --expiration)
 *   KEY         hex of the KEY text (UTF-8), or of ping's multiaddr
 *   SUBKEY      "-" or hex of the subkey's msgpack bytes
 *   VALUE       "-" or hex of store's msgpack value
 * The command parses what the user typed first (usage errors exit 2 before any node is
 * asked), so a line that does not decode is a client bug or a stranger: it gets exit 2.
 *
 * Reply: what the command would print, line by line, then its exit code:
 *   out TEXT    a line of standard output
 *   err TEXT    a line of standard error (with its "kwnode hivemind: " prefix)
 *   exit N      last line
 * so the output and exit codes are the same whether a transient node or the running one ran
 * the operation.
 */
#ifndef KW_APP_HM_LINE_H
#define KW_APP_HM_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kw_hm_verb { KW_HM_GET, KW_HM_STORE, KW_HM_PING, KW_HM_SERVERS };

#define KW_HM_REQ_KEY_MAX    4096     /* KEY text bytes (kw_hm_dhtid_of_str's limit) */
#define KW_HM_REQ_VAL_MAX    4096     /* SUBKEY and VALUE msgpack bytes */
#define KW_HM_REQ_BLOCKS_MAX 100000u  /* --num-blocks */
#define KW_HM_REQ_EXP_MAX    31536000u

#define KW_HM_REQ_LATEST 1u
#define KW_HM_REQ_JSON   2u
#define KW_HM_REQ_HEX    4u
#define KW_HM_REQ_SUBKEYS 8u

struct kw_hm_req {
	enum kw_hm_verb verb;
	unsigned flags;                    /* KW_HM_REQ_* */
	uint32_t num_blocks, exp_s;
	uint16_t sub_len, val_len;         /* 0: none */
	char key[KW_HM_REQ_KEY_MAX + 1];   /* NUL-terminated, no NUL inside */
	uint8_t sub[KW_HM_REQ_VAL_MAX];
	uint8_t val[KW_HM_REQ_VAL_MAX];
};

/* The longest request line, with its '\n', and the largest reply the node sends. */
#define KW_HM_LINE_MAX  (64 + 2 * (KW_HM_REQ_KEY_MAX + 2 * KW_HM_REQ_VAL_MAX))
#define KW_HM_REPLY_MAX 65536

/* Writes r's line with its '\n' (NUL-terminated). Return: length; -KW_ENOSPC. */
long kw_hm_req_encode(const struct kw_hm_req *r, char *out, size_t cap);
/*
 * Parses a line from kw_hm_req_encode (without the '\n'); checks what the command checks
 * (fields per verb, KEY is UTF-8 text, servers' PREFIX a dht_prefix). Return: 0; -KW_EINVAL
 * with err naming the field.
 */
int kw_hm_req_decode(struct kw_hm_req *r, const char *line, char *err, size_t errcap);

/*
 * Collects a command's output as reply lines in buf[0..cap): text written to stream 1
 * (stdout) or 2 (stderr) is split at '\n' and each line tagged. Room for the last lines is
 * kept back: output past it is dropped and kw_hm_sink_finish says so.
 */
struct kw_hm_sink {
	char *buf;
	size_t cap, len;
	int open;                          /* stream of the line being written, 0 none */
	bool cut;
};
void kw_hm_sink_init(struct kw_hm_sink *s, char *buf, size_t cap);
void kw_hm_sink_write(struct kw_hm_sink *s, int stream, const char *text, size_t n);
/* Ends the open line and appends "exit code". Return: the reply's length. */
size_t kw_hm_sink_finish(struct kw_hm_sink *s, int code);

/*
 * Prints reply lines ("out" to stdout, "err" to stderr). Return: the exit code of the "exit"
 * line; 1 when there is none (the node closed early: a message says so).
 */
int kw_hm_reply_print(const char *lines, size_t len);

/*
 * One `kwnode hivemind` command run by a running node for its control socket (the code is
 * app/cmd_hivemind.c's, so the output is the same). Made once at start-up from the node's
 * arena (about 150 KiB: the request, the command's buffers and a 64 KiB reply); it runs one
 * command at a time.
 */
struct kw_arena;
struct kw_node;
struct kw_hm_dht;
struct kw_hm_cmd;
/* Return: the command slot; NULL when the arena is too small. */
struct kw_hm_cmd *kw_hm_cmd_create(struct kw_arena *a);
/* The request to fill (kw_hm_req_decode) before kw_hm_cmd_start. */
struct kw_hm_req *kw_hm_cmd_req(struct kw_hm_cmd *m);
/*
 * Runs the request on d. done(arg, reply, len) runs once, on the loop (possibly before this
 * returns), with the reply lines ending in "exit N"; the reply stays valid until the next
 * start.
 */
void kw_hm_cmd_start(struct kw_hm_cmd *m, struct kw_node *n, struct kw_hm_dht *d,
		     void (*done)(void *arg, const char *reply, size_t len), void *arg);
/* Stops a command waiting for the routing table (control socket shutdown). An operation
 * already in the DHT still calls done when it ends. */
void kw_hm_cmd_cancel(struct kw_hm_cmd *m);

#endif /* KW_APP_HM_LINE_H */
