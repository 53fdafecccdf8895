/*
 * Identity-key costs per handshake side: sign (our static-key proof), decode + verify +
 * peer ID (checking the remote's), for every built-in key type. Baseline, measured in the
 * same run: Ed25519 through the same API (libsodium), which is what a default node pays.
 * Prints microseconds per operation (median of 7 batches).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <kw/net/key.h>

#define BATCHES 7

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

struct res { double sign, check; };

static struct res measure(const struct kw_privkey *k, int iters)
{
	static const uint8_t msg[] = "noise-libp2p-static-key:0123456789abcdef0123456789abcdef";
	static uint8_t pb[KW_KEY_PB_MAX];
	double s[BATCHES], c[BATCHES];
	uint8_t sig[KW_SIG_MAX];
	size_t slen = sizeof(sig), pblen;
	struct kw_pubkey pub;
	struct kw_peer_id id;
	struct res r;

	kw_pubkey_encode(&k->pub, pb, sizeof(pb), &pblen);
	for (int b = 0; b < BATCHES; b++) {
		double t0 = now_us();

		for (int i = 0; i < iters; i++) {
			slen = sizeof(sig);
			if (kw_key_sign(k, msg, sizeof(msg) - 1, sig, &slen) != 0)
				abort();
		}
		s[b] = (now_us() - t0) / iters;
		t0 = now_us();
		for (int i = 0; i < iters; i++) {
			if (kw_pubkey_decode(pb, pblen, &pub) != 0 ||
			    kw_pubkey_verify(&pub, msg, sizeof(msg) - 1, sig, slen) != 0 ||
			    kw_peer_id_from_pubkey(&pub, &id) != 0)
				abort();
		}
		c[b] = (now_us() - t0) / iters;
	}
	qsort(s, BATCHES, sizeof(double), cmp_d);
	qsort(c, BATCHES, sizeof(double), cmp_d);
	r.sign = s[BATCHES / 2];
	r.check = c[BATCHES / 2];
	return r;
}

int main(void)
{
	static const struct { enum kw_key_type t; int bits, iters; } cases[] = {
		{ KW_KEY_ED25519, 0, 400 }, { KW_KEY_SECP256K1, 0, 40 },
		{ KW_KEY_ECDSA, 0, 40 }, { KW_KEY_RSA, 2048, 10 },
	};
	static struct kw_privkey k;
	struct res base = { 0, 0 };

	printf("%-10s %14s %10s %22s %10s\n", "key", "sign (us)", "x ed25519", "decode+verify+id (us)",
	       "x ed25519");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct res r;

		if (!kw_key_type_supported(cases[i].t))
			continue;
		if (kw_key_generate(cases[i].t, cases[i].bits, &k) != 0)
			abort();
		r = measure(&k, cases[i].iters);
		if (i == 0)
			base = r;
		printf("%-10s %14.1f %10.1f %22.1f %10.1f\n",
		       cases[i].t == KW_KEY_RSA ? "rsa-2048" : kw_key_type_name(cases[i].t), r.sign,
		       r.sign / base.sign, r.check, r.check / base.check);
	}
	printf("(baseline: ed25519 via libsodium, same run; medians of %d batches)\n", BATCHES);
	return 0;
}
