/*
 * bench_net_aead: the crypto ceiling for the stream-throughput benchmark, and the cost of
 * our Noise layer on top of it, measured in the same run:
 *   1. raw libsodium ChaCha20-Poly1305 (IETF) on 64 KiB messages: encrypt, decrypt, and one
 *      encrypt + one decrypt per message (what a byte costs end to end on one machine);
 *   2. net/noise transport: 64 KiB of payload -> kw_noise_encrypt_all (65519-byte frames)
 *      -> kw_noise_read in one chunk -> plaintext, the same byte count;
 *   3. a complete in-memory Noise XX handshake with libp2p payloads (both sides' CPU work,
 *      no sockets), median over N handshakes, per identity key type that is built in.
 * Usage: bench_net_aead [MiB per throughput run, default 256] [handshakes, default 400; 0: none]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include <kw/err.h>
#include <kw/net/key.h>
#include <kw/net/noise.h>

#define MSG (64 * 1024)
#define ROUNDS 5

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static uint8_t bench_key[32], pt[MSG], ct[MSG + 64], back[MSG], wire[MSG + 256], rxbuf[KW_NOISE_MSG_MAX];

struct pair {
	struct kw_noise_session a, b;
};

static int handshake(struct pair *p, const struct kw_noise_identity *ia,
		     const struct kw_noise_identity *ib)
{
	static uint8_t frame[KW_NOISE_HS_FRAME_MAX];
	int err;

	if ((err = kw_noise_session_init(&p->a, ia, true, NULL)) ||
	    (err = kw_noise_session_init(&p->b, ib, false, NULL)))
		return err;
	while (!kw_noise_established(&p->a) || !kw_noise_established(&p->b)) {
		struct kw_noise_session *from = kw_noise_want_write(&p->a) ? &p->a : &p->b;
		struct kw_noise_session *to = from == &p->a ? &p->b : &p->a;
		const uint8_t *plain;
		size_t n, off = 0, pl;

		if ((err = kw_noise_handshake_write(from, frame, sizeof(frame), &n)))
			return err;
		while (off < n) {
			long used = kw_noise_read(to, frame + off, n - off, rxbuf, sizeof(rxbuf),
						  &plain, &pl);
			if (used < 0)
				return (int)used;
			off += (size_t)used;
		}
	}
	return 0;
}

struct rate {
	double enc, dec, pair;  /* MiB/s */
};

/* Raw AEAD on 64 KiB messages, nonce as Noise builds it (4 zero bytes, LE counter). */
static struct rate bench_raw(size_t iters)
{
	static uint8_t nonce[12];
	const uint8_t *key = bench_key;
	double t0, mib = (double)iters * MSG / (1024.0 * 1024.0);
	struct rate r;

	t0 = now_s();
	for (size_t i = 0; i < iters; i++) {
		memcpy(nonce + 4, &i, sizeof(uint32_t));
		crypto_aead_chacha20poly1305_ietf_encrypt_detached(ct, ct + MSG, NULL, pt, MSG, NULL, 0,
								   NULL, nonce, key);
	}
	r.enc = mib / (now_s() - t0);
	/* decrypt (MAC check + keystream) of the last message, iters times */
	t0 = now_s();
	for (size_t i = 0; i < iters; i++)
		if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(back, NULL, ct, MSG, ct + MSG,
								       NULL, 0, nonce, key) != 0)
			exit(1);
	r.dec = mib / (now_s() - t0);
	t0 = now_s();
	for (size_t i = 0; i < iters; i++) {
		memcpy(nonce + 4, &i, sizeof(uint32_t));
		crypto_aead_chacha20poly1305_ietf_encrypt_detached(ct, ct + MSG, NULL, pt, MSG, NULL, 0,
								   NULL, nonce, key);
		if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(back, NULL, ct, MSG, ct + MSG,
								       NULL, 0, nonce, key) != 0)
			exit(1);
	}
	r.pair = mib / (now_s() - t0);
	if (memcmp(back, pt, MSG) != 0)
		exit(1);
	return r;
}

/* Our transport: 64 KiB payload -> frames -> kw_noise_read -> plaintext, checked. */
static struct rate bench_noise(struct pair *p, size_t iters)
{
	double t0, t_enc = 0, t_dec = 0, mib = (double)iters * MSG / (1024.0 * 1024.0);
	struct rate r;

	for (size_t i = 0; i < iters; i++) {
		size_t n, off = 0, got = 0;

		t0 = now_s();
		if (kw_noise_encrypt_all(&p->a, pt, MSG, wire, sizeof(wire), &n))
			exit(1);
		t_enc += now_s() - t0;
		t0 = now_s();
		while (off < n) {
			const uint8_t *plain;
			size_t pl;
			long used = kw_noise_read(&p->b, wire + off, n - off, rxbuf, sizeof(rxbuf),
						  &plain, &pl);

			if (used < 0)
				exit(1);
			off += (size_t)used;
			if (plain) {
				if (got == 0 && memcmp(plain, pt, 64) != 0)
					exit(1);
				got += pl;
			}
		}
		t_dec += now_s() - t0;
		if (got != MSG)
			exit(1);
	}
	r.enc = mib / t_enc;
	r.dec = mib / t_dec;
	r.pair = mib / (t_enc + t_dec);
	return r;
}

/* Median of each field over the rounds. */
static struct rate median_rate(const struct rate *r)
{
	double e[ROUNDS], d[ROUNDS], p[ROUNDS];
	struct rate m;

	for (int i = 0; i < ROUNDS; i++) {
		e[i] = r[i].enc;
		d[i] = r[i].dec;
		p[i] = r[i].pair;
	}
	qsort(e, ROUNDS, sizeof(double), cmp_double);
	qsort(d, ROUNDS, sizeof(double), cmp_double);
	qsort(p, ROUNDS, sizeof(double), cmp_double);
	m.enc = e[ROUNDS / 2];
	m.dec = d[ROUNDS / 2];
	m.pair = p[ROUNDS / 2];
	return m;
}

static void bench_handshakes(enum kw_key_type t, int count)
{
	static const char *const mux[] = { "/yamux/1.0.0" };
	static struct kw_privkey ka, kb;
	static struct kw_noise_identity ia, ib;
	static struct pair p;
	double *ms = calloc((size_t)count, sizeof(double));

	if (!ms || kw_key_generate(t, 0, &ka) || kw_key_generate(t, 0, &kb) ||
	    kw_noise_identity_init(&ia, &ka, mux, 1, NULL) ||
	    kw_noise_identity_init(&ib, &kb, mux, 1, NULL)) {
		fprintf(stderr, "handshake setup failed for %s\n", kw_key_type_name(t));
		exit(1);
	}
	for (int i = 0; i < count; i++) {
		double t0 = now_s();
		int err = handshake(&p, &ia, &ib);

		ms[i] = (now_s() - t0) * 1e3;
		if (err) {
			fprintf(stderr, "handshake failed: %s\n", kw_strerror(err));
			exit(1);
		}
	}
	qsort(ms, (size_t)count, sizeof(double), cmp_double);
	printf("noise XX handshake, %-9s identities, both sides in memory: median %.3f ms  "
	       "(p10 %.3f, p90 %.3f, n=%d)\n", kw_key_type_name(t), ms[count / 2],
	       ms[count / 10], ms[count * 9 / 10], count);
	free(ms);
}

int main(int argc, char **argv)
{
	static const char *const mux[] = { "/yamux/1.0.0" };
	static struct kw_privkey ka, kb;
	static struct kw_noise_identity ia, ib;
	static struct pair p;
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
	int hs = argc > 2 ? atoi(argv[2]) : 400;
	size_t iters = mib * 16;  /* 64 KiB messages per MiB */
	struct rate raw, noise, rr[ROUNDS], nr[ROUNDS];

	if (sodium_init() < 0 || iters == 0 || (hs != 0 && hs < 10))
		return 1;
	randombytes_buf(pt, sizeof(pt));
	randombytes_buf(bench_key, sizeof(bench_key));
	if (kw_key_generate(KW_KEY_ED25519, 0, &ka) || kw_key_generate(KW_KEY_ED25519, 0, &kb) ||
	    kw_noise_identity_init(&ia, &ka, mux, 1, NULL) ||
	    kw_noise_identity_init(&ib, &kb, mux, 1, NULL) || handshake(&p, &ia, &ib))
		return 1;

	/* Warm up, then alternate raw and noise rounds so both see the same machine load (the
	 * machine is shared); report the median round of each. */
	(void)bench_raw(iters / 8 + 1);
	for (int r = 0; r < ROUNDS; r++) {
		rr[r] = bench_raw(iters / ROUNDS + 1);
		nr[r] = bench_noise(&p, iters / ROUNDS + 1);
	}
	raw = median_rate(rr);
	noise = median_rate(nr);
	printf("%zu MiB per measurement in %d alternating rounds (median round), 64 KiB messages\n",
	       mib, ROUNDS);
	printf("libsodium ChaCha20-Poly1305 (ceiling)  encrypt %7.1f MiB/s  decrypt %7.1f MiB/s  "
	       "encrypt+decrypt %7.1f MiB/s\n", raw.enc, raw.dec, raw.pair);
	printf("kw noise transport (framed, 65519 B)   encrypt %7.1f MiB/s  decrypt %7.1f MiB/s  "
	       "encrypt+decrypt %7.1f MiB/s  = %.0f%% of the ceiling\n", noise.enc, noise.dec,
	       noise.pair, 100.0 * noise.pair / raw.pair);
	printf("sizeof(struct kw_noise_session) = %zu bytes, struct kw_noise_identity = %zu bytes "
	       "(one per node)\n", sizeof(struct kw_noise_session), sizeof(struct kw_noise_identity));
	fflush(stdout);
	if (hs == 0)
		return 0;  /* ceiling only (bench_net_swarm.sh measures it before each transfer) */

	bench_handshakes(KW_KEY_ED25519, hs);
	if (kw_key_type_supported(KW_KEY_SECP256K1))
		bench_handshakes(KW_KEY_SECP256K1, hs);
	if (kw_key_type_supported(KW_KEY_RSA))
		bench_handshakes(KW_KEY_RSA, hs / 4 < 50 ? 50 : hs / 4);
	return 0;
}
