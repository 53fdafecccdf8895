/*
 * hivemind averaging's state download on the swarm (app/avg.c): the stream handler
 * `<prefix>::<AveragerClass>.rpc_download_state` (unary DownloadRequest in, DownloadData
 * stream out) and the caller that fetches a peer's state, as hivemind's
 * DecentralizedAverager.rpc_download_state / _load_state_from_peers do it
 * (hivemind/averaging/averager.py and p2p/servicer.py @ 4bd43b7; doc/ml-avg.md "State
 * download"). Private to app/.
 *
 * The state is what the owner of the averaged tensors says it is: msgpack metadata (the base
 * averager's is {"group_key": bits}) and float32 tensors, sent uncompressed (hivemind's
 * default state_compression, NoCompression) as 64 KiB pieces (STREAMING_CHUNK_SIZE_BYTES),
 * the metadata in the first message only. Memory: a scratch message buffer and
 * KW_APP_AVG_DOWNLOADS serve and download slots from the node's arena at kw_app_avg_create;
 * a download writes straight into the caller's tensors. Nothing is allocated per message.
 */
#ifndef KW_APP_AVG_H
#define KW_APP_AVG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kw_hm;
struct kw_conn;
struct kw_node;
struct kw_app_avg;

#define KW_APP_AVG_CHUNK      65536  /* hivemind STREAMING_CHUNK_SIZE_BYTES */
#define KW_APP_AVG_DOWNLOADS  4      /* state downloads served at once */
#define KW_APP_AVG_META_MAX   4096   /* metadata bytes we send or take */
#define KW_APP_AVG_NAME_MAX   128

/* The state as it is now. Tensors are borrowed and read while the download runs: the owner
 * must not average into them until done (hivemind copies them under a lock first). */
struct kw_app_avg_state {
	const uint8_t *metadata;   /* msgpack; NULL when len is 0 */
	size_t metadata_len;
	size_t n_tensors;
	const float *const *tensors;
	const uint64_t *numel;
};
/* Fills *st; returns 0, or -KW_ENOENT when the node does not share its state now (the
 * download then ends with no message, as hivemind's allow_state_sharing = False). */
typedef int (*kw_app_avg_state_fn)(struct kw_app_avg_state *st, void *arg);

/* "<prefix>::<cls>.rpc_download_state" into out[0..cap) (ServicerBase._get_handle_name).
 * Return: its length; -KW_EINVAL (prefix with a '.', empty names); -KW_ENOSPC. */
int kw_app_avg_handle_name(const char *prefix, const char *cls, char *out, size_t cap);

/*
 * The averager's RPC side under prefix/cls (hivemind's default class name is
 * "DecentralizedAverager"): with get_state non-NULL it serves the state download (hm needs
 * kw_hm_stream_setup first, with a stream buffer that holds one 64 KiB piece:
 * KW_NET_HIVEMIND_STREAM_BUF_BYTES, default 72 KiB); either way it can download a peer's
 * state (kw_app_avg_download). Start-up only: the scratch buffer and the serve and download
 * slots come from n's arena (the node hm runs on).
 * Return: 0 with *out; -KW_ENOMEM; kw_app_avg_handle_name's and kw_hm_register_stream's
 * errors.
 */
int kw_app_avg_create(struct kw_node *n, struct kw_hm *hm, const char *prefix, const char *cls,
		      kw_app_avg_state_fn get_state, void *arg, struct kw_app_avg **out);

struct kw_app_avg_stats {
	uint64_t served, refused_busy, not_shared, messages_out, bytes_out;
	uint64_t downloads, downloads_failed, messages_in;
};
void kw_app_avg_get_stats(const struct kw_app_avg *av, struct kw_app_avg_stats *st);

/* Where a download goes: the caller's tensors (numel floats each, in the server's order)
 * and metadata buffer. Borrowed until done runs. */
struct kw_app_avg_dest {
	size_t n_tensors;
	float *const *tensors;
	const uint64_t *numel;
	uint8_t *metadata;
	size_t metadata_cap;
};

/*
 * The outcome: err 0 with every tensor filled and metadata_len bytes of metadata;
 * -KW_ENOENT (the peer sent no state: hivemind tries the next peer); -KW_EBADMSG (a bad
 * DownloadData or piece); -KW_ERANGE (tensor count or sizes differ from dest); -KW_ENOTSUP
 * (a dtype other than float32 or a compression other than NONE); -KW_EMSGSIZE (metadata
 * larger than dest); the stream's errors; or err 0 with remote_error and text (the peer's
 * handler failed, as Python raises it).
 */
struct kw_app_avg_dl_result {
	int err;
	bool remote_error;
	const char *text;
	size_t tensors, metadata_len;
	uint64_t messages;
};
typedef void (*kw_app_avg_dl_fn)(const struct kw_app_avg_dl_result *r, void *user);

/*
 * Downloads the state of the peer of c. Returns at once; done runs exactly once on the loop.
 * Return: 0; -KW_ELIMIT (KW_APP_AVG_DOWNLOADS downloads running); -KW_EINVAL;
 * kw_hm_stream_open's errors (done does not run then).
 */
int kw_app_avg_download(struct kw_app_avg *av, struct kw_conn *c, const struct kw_app_avg_dest *dest,
			uint32_t idle_ms, kw_app_avg_dl_fn done, void *user);

#endif /* KW_APP_AVG_H */
