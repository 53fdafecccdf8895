/*
 * Multiaddr binary/text codec. Every decoder checks each length before use; the struct only
 * ever holds validated bytes, so users can walk components without re-checking.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <kw/bytes.h>
#include <kw/compiler.h>
#include <kw/err.h>
#include <kw/net/multiaddr.h>
#include <kw/net/varint.h>

#define VAR (-1)  /* value is uvarint(len) || bytes */

struct proto {
	uint32_t code;
	int size;  /* fixed value size, 0 for none, VAR for length-prefixed */
	const char *name;
};

static const struct proto protos[] = {
	{ KW_MA_IP4, 4, "ip4" },
	{ KW_MA_TCP, 2, "tcp" },
	{ KW_MA_IP6, 16, "ip6" },
	{ KW_MA_DNS, VAR, "dns" },
	{ KW_MA_DNS4, VAR, "dns4" },
	{ KW_MA_DNS6, VAR, "dns6" },
	{ KW_MA_DNSADDR, VAR, "dnsaddr" },
	{ KW_MA_UDP, 2, "udp" },
	{ KW_MA_P2P_CIRCUIT, 0, "p2p-circuit" },
	{ KW_MA_P2P, VAR, "p2p" },
	{ KW_MA_TLS, 0, "tls" },
	{ KW_MA_NOISE, 0, "noise" },
	{ KW_MA_QUIC, 0, "quic" },
	{ KW_MA_QUIC_V1, 0, "quic-v1" },
	{ KW_MA_WS, 0, "ws" },
	{ KW_MA_WSS, 0, "wss" },
};

#define DNS_NAME_MAX 255

static const struct proto *proto_by_code(uint64_t code)
{
	size_t i;

	for (i = 0; i < KW_ARRAY_SIZE(protos); i++)
		if (protos[i].code == code)
			return &protos[i];
	return NULL;
}

static const struct proto *proto_by_name(const char *name, size_t len)
{
	size_t i;

	if (len == 4 && memcmp(name, "ipfs", 4) == 0)
		return proto_by_code(KW_MA_P2P);  /* legacy alias */
	for (i = 0; i < KW_ARRAY_SIZE(protos); i++)
		if (strlen(protos[i].name) == len && memcmp(protos[i].name, name, len) == 0)
			return &protos[i];
	return NULL;
}

static bool is_dns(uint32_t code)
{
	return code == KW_MA_DNS || code == KW_MA_DNS4 || code == KW_MA_DNS6 ||
	       code == KW_MA_DNSADDR;
}

/* Checks a variable-size value; the fixed-size ones are valid at any bit pattern. */
static int check_value(const struct proto *p, const uint8_t *v, size_t len, char *err,
		       size_t errcap)
{
	struct kw_peer_id id;

	if (is_dns(p->code)) {
		/* Printable as text and back: no '/', no NUL, not empty. */
		if (len == 0 || len > DNS_NAME_MAX || memchr(v, '/', len) || memchr(v, 0, len))
			return kw_errf(-KW_EINVAL, err, errcap, "invalid %s name", p->name);
		return 0;
	}
	if (p->code == KW_MA_P2P && kw_peer_id_from_bytes(v, len, &id) < 0)
		return kw_errf(-KW_EINVAL, err, errcap, "invalid peer id in /p2p");
	return 0;
}

/* Walks one component at buf[*off]; fills c. Input already length-bounded by the caller. */
static int next_comp(const uint8_t *buf, size_t len, size_t *off, struct kw_maddr_comp *c,
		     const struct proto **pp, char *err, size_t errcap)
{
	const struct proto *p;
	uint64_t code, vlen;
	size_t o = *off;
	int n;

	n = kw_uvarint_decode(buf + o, len - o, &code);
	if (n < 0)
		return kw_errf(-KW_EINVAL, err, errcap, "bad protocol code varint at byte %zu", o);
	o += (size_t)n;
	p = proto_by_code(code);
	if (!p)
		return kw_errf(-KW_ENOPROTO, err, errcap, "unknown protocol code 0x%llx (%llu)",
			       (unsigned long long)code, (unsigned long long)code);
	if (p->size == VAR) {
		n = kw_uvarint_decode(buf + o, len - o, &vlen);
		if (n < 0)
			return kw_errf(-KW_EINVAL, err, errcap, "bad %s length varint", p->name);
		o += (size_t)n;
	} else {
		vlen = (uint64_t)p->size;
	}
	if (vlen > len - o)
		return kw_errf(-KW_EINVAL, err, errcap, "truncated %s value", p->name);
	c->code = p->code;
	c->len = (uint16_t)vlen;
	c->value = vlen ? buf + o : NULL;
	*off = o + (size_t)vlen;
	*pp = p;
	return 0;
}

int kw_maddr_from_bytes(const uint8_t *buf, size_t len, struct kw_multiaddr *out, char *err,
			size_t errcap)
{
	struct kw_maddr_comp c;
	const struct proto *p;
	size_t off = 0;
	unsigned n = 0;
	int ret;

	if (len == 0)
		return kw_errf(-KW_EINVAL, err, errcap, "empty multiaddr");
	if (len > KW_MADDR_MAX_BYTES)
		return kw_errf(-KW_EMSGSIZE, err, errcap, "multiaddr longer than %d bytes",
			       KW_MADDR_MAX_BYTES);
	while (off < len) {
		if (n == KW_MADDR_MAX_COMPONENTS)
			return kw_errf(-KW_EMSGSIZE, err, errcap, "more than %d components",
				       KW_MADDR_MAX_COMPONENTS);
		ret = next_comp(buf, len, &off, &c, &p, err, errcap);
		if (ret < 0)
			return ret;
		ret = check_value(p, c.value, c.len, err, errcap);
		if (ret < 0)
			return ret;
		n++;
	}
	memcpy(out->bytes, buf, len);
	out->len = (uint16_t)len;
	out->n = (uint8_t)n;
	return 0;
}

int kw_maddr_component(const struct kw_multiaddr *ma, unsigned idx, struct kw_maddr_comp *c)
{
	const struct proto *p;
	size_t off = 0;
	unsigned i;

	if (idx >= ma->n)
		return -KW_ENOENT;
	for (i = 0; i <= idx; i++)
		if (next_comp(ma->bytes, ma->len, &off, c, &p, NULL, 0) < 0)
			return -KW_ENOENT;  /* cannot happen for a validated struct */
	return 0;
}

/* ---- text ---------------------------------------------------------------------------- */

static int parse_port(const char *s, size_t len, uint8_t out[2])
{
	unsigned v = 0;
	size_t i;

	if (len == 0 || len > 5)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	kw_put_be16(out, (uint16_t)v);
	return 0;
}

/* Appends code and value to out (the validated-bytes invariant is kept by the callers). */
static int put_comp(struct kw_multiaddr *out, uint32_t code, bool var, const uint8_t *v,
		    size_t len)
{
	uint8_t hdr[2 * KW_UVARINT_MAX_BYTES];
	int a, b = 0;

	if (out->n == KW_MADDR_MAX_COMPONENTS)
		return -KW_EMSGSIZE;
	a = kw_uvarint_encode(code, hdr, sizeof(hdr));
	if (var)
		b = kw_uvarint_encode(len, hdr + a, sizeof(hdr) - (size_t)a);
	if (a < 0 || b < 0 || (size_t)out->len + (size_t)a + (size_t)b + len > KW_MADDR_MAX_BYTES)
		return -KW_EMSGSIZE;
	memcpy(out->bytes + out->len, hdr, (size_t)(a + b));
	if (len)
		memcpy(out->bytes + out->len + a + b, v, len);
	out->len = (uint16_t)(out->len + a + b + len);
	out->n++;
	return 0;
}

int kw_maddr_from_text(const char *s, struct kw_multiaddr *out, char *err, size_t errcap)
{
	const char *p = s;
	struct kw_multiaddr m = { 0 };

	if (!s || s[0] != '/')
		return kw_errf(-KW_EINVAL, err, errcap, "multiaddr must start with '/'");
	if (strnlen(s, KW_MADDR_TEXT_MAX) >= KW_MADDR_TEXT_MAX)
		return kw_errf(-KW_EMSGSIZE, err, errcap, "multiaddr text too long");
	while (*p == '/' && p[1] != '\0') {
		const char *name = p + 1, *val, *end;
		const struct proto *pr;
		uint8_t v[KW_PEER_ID_MAX > 16 ? KW_PEER_ID_MAX : 16];
		char tmp[64];
		size_t nlen, vlen;
		int ret = 0;

		end = strchr(name, '/');
		nlen = end ? (size_t)(end - name) : strlen(name);
		if (nlen == 0)
			return kw_errf(-KW_EINVAL, err, errcap, "empty component in multiaddr");
		pr = proto_by_name(name, nlen);
		if (!pr)
			return kw_errf(-KW_ENOPROTO, err, errcap, "unknown protocol '%.*s'",
				       (int)KW_MIN(nlen, 32), name);
		p = name + nlen;
		if (pr->size == 0) {
			ret = put_comp(&m, pr->code, false, NULL, 0);
			goto next;
		}
		if (*p != '/' || p[1] == '/' || p[1] == '\0')
			return kw_errf(-KW_EINVAL, err, errcap, "missing value for /%s", pr->name);
		val = p + 1;
		end = strchr(val, '/');
		vlen = end ? (size_t)(end - val) : strlen(val);
		p = val + vlen;
		switch (pr->code) {
		case KW_MA_IP4:
		case KW_MA_IP6:
			if (vlen >= sizeof(tmp))
				return kw_errf(-KW_EINVAL, err, errcap, "invalid %s address", pr->name);
			memcpy(tmp, val, vlen);
			tmp[vlen] = '\0';
			if (inet_pton(pr->code == KW_MA_IP4 ? AF_INET : AF_INET6, tmp, v) != 1)
				return kw_errf(-KW_EINVAL, err, errcap, "invalid %s address '%s'", pr->name,
					       tmp);
			ret = put_comp(&m, pr->code, false, v, (size_t)pr->size);
			break;
		case KW_MA_TCP:
		case KW_MA_UDP:
			if (parse_port(val, vlen, v) < 0)
				return kw_errf(-KW_EINVAL, err, errcap, "invalid %s port '%.*s'", pr->name,
					       (int)KW_MIN(vlen, 16), val);
			ret = put_comp(&m, pr->code, false, v, 2);
			break;
		case KW_MA_P2P: {
			struct kw_peer_id id;
			char idtxt[KW_PEER_ID_TEXT_MAX];

			if (vlen >= sizeof(idtxt))
				return kw_errf(-KW_EINVAL, err, errcap, "invalid peer id in /p2p");
			memcpy(idtxt, val, vlen);
			idtxt[vlen] = '\0';
			if (kw_peer_id_from_text(idtxt, &id) < 0)
				return kw_errf(-KW_EINVAL, err, errcap, "invalid peer id '%.*s'",
					       (int)KW_MIN(vlen, 60), val);
			ret = put_comp(&m, pr->code, true, id.bytes, id.len);
			break;
		}
		default:  /* DNS names */
			ret = check_value(pr, (const uint8_t *)val, vlen, err, errcap);
			if (ret < 0)
				return ret;
			ret = put_comp(&m, pr->code, true, (const uint8_t *)val, vlen);
			break;
		}
next:
		if (ret < 0)
			return kw_errf(ret, err, errcap, "multiaddr exceeds %d bytes or %d components",
				       KW_MADDR_MAX_BYTES, KW_MADDR_MAX_COMPONENTS);
	}
	/* Tolerate one trailing '/', as go-multiaddr does; anything else left is an error. */
	if (*p == '/' && p[1] == '\0')
		p++;
	if (*p != '\0' || m.n == 0)
		return kw_errf(-KW_EINVAL, err, errcap, "empty component in multiaddr");
	*out = m;
	return 0;
}

int kw_maddr_to_text(const struct kw_multiaddr *ma, char *out, size_t cap)
{
	struct kw_maddr_comp c;
	const struct proto *pr;
	size_t off = 0, o = 0;
	int n;

	if (cap == 0)
		return -KW_ENOSPC;
	out[0] = '\0';
	while (off < ma->len) {
		char val[KW_PEER_ID_TEXT_MAX > INET6_ADDRSTRLEN ? KW_PEER_ID_TEXT_MAX : INET6_ADDRSTRLEN];

		if (next_comp(ma->bytes, ma->len, &off, &c, &pr, NULL, 0) < 0)
			return -KW_EINVAL;
		val[0] = '\0';
		switch (c.code) {
		case KW_MA_IP4:
		case KW_MA_IP6:
			if (!inet_ntop(c.code == KW_MA_IP4 ? AF_INET : AF_INET6, c.value, val,
				       sizeof(val)))
				return -KW_EINVAL;
			break;
		case KW_MA_TCP:
		case KW_MA_UDP:
			snprintf(val, sizeof(val), "%u", kw_get_be16(c.value));
			break;
		case KW_MA_P2P: {
			struct kw_peer_id id;

			memcpy(id.bytes, c.value, c.len);
			id.len = (uint8_t)c.len;
			if (kw_peer_id_to_text(&id, val, sizeof(val)) < 0)
				return -KW_EINVAL;
			break;
		}
		default:
			break;
		}
		if (is_dns(c.code))
			n = snprintf(out + o, cap - o, "/%s/%.*s", pr->name, (int)c.len,
				     (const char *)c.value);
		else if (pr->size == 0)
			n = snprintf(out + o, cap - o, "/%s", pr->name);
		else
			n = snprintf(out + o, cap - o, "/%s/%s", pr->name, val);
		if (n < 0 || (size_t)n >= cap - o) {
			out[0] = '\0';
			return -KW_ENOSPC;
		}
		o += (size_t)n;
	}
	return 0;
}

bool kw_maddr_equal(const struct kw_multiaddr *a, const struct kw_multiaddr *b)
{
	return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

int kw_maddr_encapsulate(struct kw_multiaddr *ma, const struct kw_multiaddr *tail)
{
	if ((size_t)ma->len + tail->len > KW_MADDR_MAX_BYTES ||
	    (unsigned)ma->n + tail->n > KW_MADDR_MAX_COMPONENTS)
		return -KW_EMSGSIZE;
	memcpy(ma->bytes + ma->len, tail->bytes, tail->len);
	ma->len = (uint16_t)(ma->len + tail->len);
	ma->n = (uint8_t)(ma->n + tail->n);
	return 0;
}

/* ---- sockets and peer IDs ------------------------------------------------------------ */

int kw_maddr_to_sockaddr(const struct kw_multiaddr *ma, struct sockaddr_storage *ss,
			 socklen_t *sslen)
{
	struct kw_maddr_comp ip, tcp, p2p;

	if (ma->n < 2 || ma->n > 3 || kw_maddr_component(ma, 0, &ip) < 0 ||
	    kw_maddr_component(ma, 1, &tcp) < 0 || tcp.code != KW_MA_TCP)
		return -KW_ENOTSUP;
	if (ma->n == 3 && (kw_maddr_component(ma, 2, &p2p) < 0 || p2p.code != KW_MA_P2P))
		return -KW_ENOTSUP;
	memset(ss, 0, sizeof(*ss));
	if (ip.code == KW_MA_IP4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, ip.value, 4);
		sin->sin_port = htons(kw_get_be16(tcp.value));
		*sslen = sizeof(*sin);
		return 0;
	}
	if (ip.code == KW_MA_IP6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, ip.value, 16);
		sin6->sin6_port = htons(kw_get_be16(tcp.value));
		*sslen = sizeof(*sin6);
		return 0;
	}
	return -KW_ENOTSUP;
}

int kw_maddr_from_sockaddr(const struct sockaddr *sa, socklen_t salen, struct kw_multiaddr *out)
{
	uint8_t port[2];

	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET && salen >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		kw_put_be16(port, ntohs(sin->sin_port));
		put_comp(out, KW_MA_IP4, false, (const uint8_t *)&sin->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6 && salen >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		kw_put_be16(port, ntohs(sin6->sin6_port));
		put_comp(out, KW_MA_IP6, false, (const uint8_t *)&sin6->sin6_addr, 16);
	} else {
		return -KW_ENOTSUP;
	}
	put_comp(out, KW_MA_TCP, false, port, 2);
	return 0;
}

/* Offset of the last component, or -1 for an empty multiaddr. */
static int last_comp(const struct kw_multiaddr *ma, struct kw_maddr_comp *c)
{
	const struct proto *p;
	size_t off = 0, start = 0;

	if (ma->n == 0)
		return -1;
	while (off < ma->len) {
		start = off;
		if (next_comp(ma->bytes, ma->len, &off, c, &p, NULL, 0) < 0)
			return -1;
	}
	return (int)start;
}

int kw_maddr_peer_id(const struct kw_multiaddr *ma, struct kw_peer_id *id)
{
	struct kw_maddr_comp c;

	if (last_comp(ma, &c) < 0 || c.code != KW_MA_P2P)
		return -KW_ENOENT;
	memcpy(id->bytes, c.value, c.len);
	id->len = (uint8_t)c.len;
	return 0;
}

int kw_maddr_append_peer_id(struct kw_multiaddr *ma, const struct kw_peer_id *id)
{
	struct kw_maddr_comp c;
	struct kw_peer_id check;

	if (last_comp(ma, &c) >= 0 && c.code == KW_MA_P2P)
		return -KW_EEXIST;
	/* The struct only holds validated bytes, whatever the caller's id went through. */
	if (kw_peer_id_from_bytes(id->bytes, id->len, &check) < 0)
		return -KW_EINVAL;
	return put_comp(ma, KW_MA_P2P, true, id->bytes, id->len);
}

void kw_maddr_strip_peer_id(struct kw_multiaddr *ma)
{
	struct kw_maddr_comp c;
	int start = last_comp(ma, &c);

	if (start >= 0 && c.code == KW_MA_P2P) {
		ma->len = (uint16_t)start;
		ma->n--;
	}
}
