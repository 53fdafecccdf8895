/* Per-operation mbedTLS RNG seeded from getrandom, and a tiny DER peek shared by the
 * mbedTLS-backed key types. */
#include <mbedtls/asn1.h>

#include <kw/rng.h>

#include "key_priv.h"

static int entropy_from_kernel(void *ctx, unsigned char *buf, size_t len)
{
	return kw_rng_bytes(buf, len) == 0 ? 0 : MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
}

int kw_mbed_rng_init(mbedtls_ctr_drbg_context *d)
{
	static const unsigned char pers[] = "kwaainet-edge net/peer";

	mbedtls_ctr_drbg_init(d);
	if (mbedtls_ctr_drbg_seed(d, entropy_from_kernel, NULL, pers, sizeof(pers) - 1) != 0) {
		mbedtls_ctr_drbg_free(d);
		return -KW_EIO;
	}
	return 0;
}

void kw_mbed_rng_free(mbedtls_ctr_drbg_context *d)
{
	mbedtls_ctr_drbg_free(d);
}

int kw_der_second_tag(const uint8_t *der, size_t len)
{
	unsigned char *p = (unsigned char *)der, *end = p + len;
	size_t l;

	if (mbedtls_asn1_get_tag(&p, end, &l, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE))
		return -1;
	end = p + l;
	if (mbedtls_asn1_get_tag(&p, end, &l, MBEDTLS_ASN1_INTEGER))
		return -1;
	p += l;
	return p < end ? *p : -1;
}
