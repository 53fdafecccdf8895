/* Matchmaking decisions (ml/avg/matchmaking.c) against hivemind @ 4bd43b7 matchmaking.py and
 * key_manager.py: group keys, leader order, join refusal codes in hivemind's order, follower
 * and leader paths, retry after an expired search. The DHT and RPCs are recorded fakes. */
#include "harness.h"

#include <math.h>
#include <string.h>

#include <kw/err.h>
#include <kw/ml/avg.h>

struct rec {
	int declares, undeclares, joins, replies, assembled, assembled_err;
	uint8_t last_join[KW_AVG_PEER_ID_MAX];
	size_t last_join_len;
	enum kw_avg_code last_code;
	uint8_t last_sug[KW_AVG_PEER_ID_MAX];
	size_t last_sug_len;
	int join_fail;   /* join() fails this many times */
};

static int f_declare(void *u, const char *key, double exp, bool looking)
{
	struct rec *r = u;

	(void)key; (void)exp;
	if (looking)
		r->declares++;
	else
		r->undeclares++;
	return 0;
}

static int f_join(void *u, const uint8_t *leader, size_t len, double exp)
{
	struct rec *r = u;

	(void)exp;
	r->joins++;
	memcpy(r->last_join, leader, len);
	r->last_join_len = len;
	if (r->join_fail > 0) {
		r->join_fail--;
		return -KW_ECONNREFUSED;
	}
	return 0;
}

static int f_reply(void *u, const uint8_t *id, size_t len, enum kw_avg_code code,
		   const uint8_t *sug, size_t sl)
{
	struct rec *r = u;

	(void)id; (void)len;
	r->replies++;
	r->last_code = code;
	memcpy(r->last_sug, sug ? sug : (const uint8_t *)"", sl);
	r->last_sug_len = sl;
	return 0;
}

static void f_assembled(void *u, int err)
{
	struct rec *r = u;

	r->assembled++;
	r->assembled_err = err;
}

static const uint8_t self_id[] = "peer-M";
static const uint8_t schema[20] = { 0x6a, 0xbf, 0x97 };

static void mm_new(struct kw_avg_mm *mm, struct rec *r, unsigned target, bool client)
{
	struct kw_avg_mm_cfg cfg = {
		.key = "my_averager.0b", .self = self_id, .self_len = 6,
		.schema_hash = schema, .schema_hash_len = 20, .client_mode = client,
		.min_group_size = 2, .target_group_size = target,
	};
	struct kw_avg_mm_ops ops = { f_declare, f_join, f_reply, f_assembled, r };

	memset(r, 0, sizeof(*r));
	kw_avg_mm_init(mm, &cfg, &ops);
}

static struct kw_avg_join_req req_from(const char *id)
{
	struct kw_avg_join_req q = {
		.schema_hash = schema, .schema_hash_len = 20, .expiration = 1000.0,
		.group_key = "my_averager.0b", .peer_id = (const uint8_t *)id, .peer_id_len = strlen(id),
	};
	return q;
}

static void cand(struct kw_avg_candidate *c, const char *id, double exp)
{
	memset(c, 0, sizeof(*c));
	c->peer_id_len = strlen(id);
	memcpy(c->peer_id, id, c->peer_id_len);
	c->expiration = exp;
}

static void test_avg_group_key_is_prefix_0b_bits(void **state)
{
	char k[64];

	assert_int_equal(kw_avg_group_key("my_averager", "", k, sizeof(k)), 14);
	assert_string_equal(k, "my_averager.0b");
	assert_int_equal(kw_avg_group_key("run1_grad_averager", "0110", k, sizeof(k)), 25);
	assert_string_equal(k, "run1_grad_averager.0b0110");
	assert_int_equal(kw_avg_group_key("a.b", "", k, sizeof(k)), -KW_EINVAL);
	assert_int_equal(kw_avg_group_key("", "", k, sizeof(k)), -KW_EINVAL);
	assert_int_equal(kw_avg_group_key("a", "012", k, sizeof(k)), -KW_EINVAL);
	assert_int_equal(kw_avg_group_key("my_averager", "", k, 14), -KW_ENOSPC);
}

static void test_avg_group_key_validity_follows_the_regex(void **state)
{
	assert_true(kw_avg_group_key_valid("x.0b", 4));
	assert_true(kw_avg_group_key_valid("x.0b0101", 8));
	assert_false(kw_avg_group_key_valid(".0b", 3));
	assert_false(kw_avg_group_key_valid("x.0b2", 5));
	assert_false(kw_avg_group_key_valid("x.1b", 4));
	assert_false(kw_avg_group_key_valid("x.y.0b", 6));
}

static void test_avg_mm_asks_only_earlier_leaders_best_first(void **state)
{
	struct kw_avg_mm mm;
	struct rec r;
	struct kw_avg_candidate c[4];

	mm_new(&mm, &r, 0, false);
	assert_int_equal(kw_avg_mm_begin(&mm, 100.0), 0);
	assert_int_equal(r.declares, 1);
	cand(&c[0], "peer-Z", 99.0);    /* earlier expiration: may lead */
	cand(&c[1], "peer-A", 100.0);   /* same expiration, smaller id: may lead */
	cand(&c[2], "peer-N", 100.0);   /* same expiration, larger id: may not */
	cand(&c[3], "peer-B", 101.0);   /* later: may not */
	assert_int_equal(kw_avg_mm_on_averagers(&mm, c, 4), 0);
	assert_int_equal(mm.n_leaders, 2);
	assert_int_equal(r.joins, 1);
	assert_memory_equal(r.last_join, "peer-Z", 6);
	assert_int_equal(mm.state, KW_AVG_MM_JOINING);
	/* refused: the next one */
	assert_int_equal(kw_avg_mm_on_leader_msg(&mm, KW_AVG_BAD_EXPIRATION_TIME, NULL, 0), 0);
	assert_int_equal(r.joins, 2);
	assert_memory_equal(r.last_join, "peer-A", 6);
	/* that one fails too: nobody left, we wait to lead */
	assert_int_equal(kw_avg_mm_on_leader_error(&mm, -KW_ETIMEDOUT), 0);
	assert_int_equal(mm.state, KW_AVG_MM_SEARCHING);
}

static void test_avg_mm_follower_assembles_on_begin_allreduce(void **state)
{
	struct kw_avg_mm mm;
	struct rec r;
	struct kw_avg_candidate c;

	mm_new(&mm, &r, 0, false);
	kw_avg_mm_begin(&mm, 100.0);
	cand(&c, "peer-A", 50.0);
	kw_avg_mm_on_averagers(&mm, &c, 1);
	assert_int_equal(kw_avg_mm_on_leader_msg(&mm, KW_AVG_ACCEPTED, NULL, 0), 0);
	assert_int_equal(mm.state, KW_AVG_MM_FOLLOWING);
	assert_int_equal(kw_avg_mm_on_leader_msg(&mm, KW_AVG_BEGIN_ALLREDUCE, NULL, 0), 0);
	assert_int_equal(mm.state, KW_AVG_MM_ASSEMBLED);
	assert_int_equal(r.assembled, 1);
	assert_int_equal(r.assembled_err, 0);
	assert_int_equal(r.undeclares, 1);   /* left the bucket */
}

static void test_avg_mm_follower_goes_to_the_suggested_leader_on_disband(void **state)
{
	struct kw_avg_mm mm;
	struct rec r;
	struct kw_avg_candidate c;

	mm_new(&mm, &r, 0, false);
	kw_avg_mm_begin(&mm, 100.0);
	cand(&c, "peer-A", 50.0);
	kw_avg_mm_on_averagers(&mm, &c, 1);
	kw_avg_mm_on_leader_msg(&mm, KW_AVG_ACCEPTED, NULL, 0);
	assert_int_equal(kw_avg_mm_on_leader_msg(&mm, KW_AVG_GROUP_DISBANDED,
						 (const uint8_t *)"peer-0", 6), 0);
	assert_int_equal(r.joins, 2);
	assert_memory_equal(r.last_join, "peer-0", 6);
	assert_int_equal(mm.state, KW_AVG_MM_JOINING);
}

static void test_avg_mm_refusals_come_in_hivemind_order(void **state)
{
	struct kw_avg_mm mm;
	struct rec r;
	struct kw_avg_join_req q = req_from("peer-F");
	uint8_t other[20] = { 1 };
	struct kw_avg_candidate c;

	mm_new(&mm, &r, 0, false);
	assert_int_equal(kw_avg_mm_on_join(&mm, &q), KW_AVG_NOT_LOOKING_FOR_GROUP);
	kw_avg_mm_begin(&mm, 100.0);
	q.schema_hash_len = 0;
	assert_int_equal(kw_avg_mm_on_join(&mm, &q), KW_AVG_PROTOCOL_VIOLATION);
	q = req_from("peer-F");
	q.expiration = NAN;
	assert_int_equal(kw_avg_mm_on_join(&mm, &q), KW_AVG_PROTOCOL_VIOLATION);
	q = req_from("peer-F");
	q.schema_hash = other;
	assert_int_equal(kw_avg_mm_on_join(&mm, &q), KW_AVG_BAD_SCHEMA_HASH);
	q = req_from("peer-F");
	q.group_key = "my_averager.0b1";
	assert_int_equal(kw_avg_mm_on_join(&mm, &q), KW_AVG_BAD_GROUP_KEY);
	q = req_from("peer-F");
	q.expiration = 99.0;   /* we cannot begin before it expires */
	assert_int_equal(kw_avg_mm_on_join(&mm, &q), KW_AVG_BAD_EXPIRATION_TIME);
	q = req_from("peer-M");
	assert_int_equal(kw_avg_mm_on_join(&mm, &q), KW_AVG_DUPLICATE_PEER_ID);
	q = req_from("peer-F");
	assert_int_equal(kw_avg_mm_on_join(&mm, &q), KW_AVG_NO_CODE);
	assert_int_equal(r.last_code, KW_AVG_ACCEPTED);
	assert_int_equal(kw_avg_mm_on_join(&mm, &q), KW_AVG_DUPLICATE_PEER_ID);
	assert_int_equal(r.last_code, KW_AVG_DUPLICATE_PEER_ID);
	/* once we follow someone, joiners are sent to our leader */
	cand(&c, "peer-A", 50.0);
	kw_avg_mm_on_averagers(&mm, &c, 1);
	kw_avg_mm_on_leader_msg(&mm, KW_AVG_ACCEPTED, NULL, 0);
	assert_int_equal(r.last_code, KW_AVG_GROUP_DISBANDED);   /* our follower went away */
	assert_memory_equal(r.last_sug, "peer-A", 6);
	q = req_from("peer-G");
	assert_int_equal(kw_avg_mm_on_join(&mm, &q), KW_AVG_NOT_A_LEADER);
	assert_int_equal(r.last_sug_len, 6);
	assert_memory_equal(r.last_sug, "peer-A", 6);
}

static void test_avg_mm_client_never_leads(void **state)
{
	struct kw_avg_mm mm;
	struct rec r;
	struct kw_avg_join_req q = req_from("peer-F");

	mm_new(&mm, &r, 0, true);
	kw_avg_mm_begin(&mm, 100.0);
	assert_int_equal(r.declares, 0);   /* clients do not declare */
	assert_int_equal(kw_avg_mm_on_join(&mm, &q), KW_AVG_PROTOCOL_VIOLATION);
	assert_int_equal(kw_avg_mm_on_expired(&mm), -KW_ETIMEDOUT);
	assert_int_equal(r.assembled_err, -KW_ETIMEDOUT);
}

static void test_avg_mm_leader_assembles_at_target_size(void **state)
{
	struct kw_avg_mm mm;
	struct rec r;
	struct kw_avg_join_req a = req_from("peer-F"), b = req_from("peer-G");

	mm_new(&mm, &r, 3, false);
	kw_avg_mm_begin(&mm, 100.0);
	assert_int_equal(kw_avg_mm_on_join(&mm, &a), KW_AVG_NO_CODE);
	assert_int_equal(r.assembled, 0);
	assert_int_equal(kw_avg_mm_on_join(&mm, &b), KW_AVG_NO_CODE);
	assert_int_equal(r.assembled, 1);
	assert_int_equal(r.assembled_err, 0);
	assert_int_equal(mm.n_followers, 2);
	assert_int_equal(mm.state, KW_AVG_MM_ASSEMBLED);
}

static void test_avg_mm_expiry_leads_a_good_enough_group(void **state)
{
	struct kw_avg_mm mm;
	struct rec r;
	struct kw_avg_join_req a = req_from("peer-F");

	mm_new(&mm, &r, 0, false);
	kw_avg_mm_begin(&mm, 100.0);
	kw_avg_mm_on_join(&mm, &a);
	assert_int_equal(kw_avg_mm_on_expired(&mm), 0);
	assert_int_equal(r.assembled, 1);
	assert_int_equal(r.assembled_err, 0);
}

static void test_avg_mm_expiry_alone_fails_and_the_caller_retries(void **state)
{
	struct kw_avg_mm mm;
	struct rec r;

	mm_new(&mm, &r, 0, false);
	kw_avg_mm_begin(&mm, 100.0);
	assert_int_equal(kw_avg_mm_on_expired(&mm), -KW_ETIMEDOUT);
	assert_int_equal(mm.state, KW_AVG_MM_FAILED);
	assert_int_equal(r.assembled_err, -KW_ETIMEDOUT);
	assert_int_equal(r.undeclares, 1);
	assert_int_equal(kw_avg_mm_begin(&mm, 200.0), 0);
	assert_int_equal(mm.retries, 1);
	assert_int_equal(r.declares, 2);
}

static void test_avg_mm_a_failing_join_moves_to_the_next_leader(void **state)
{
	struct kw_avg_mm mm;
	struct rec r;
	struct kw_avg_candidate c[2];

	mm_new(&mm, &r, 0, false);
	kw_avg_mm_begin(&mm, 100.0);
	r.join_fail = 1;
	cand(&c[0], "peer-A", 10.0);
	cand(&c[1], "peer-B", 20.0);
	kw_avg_mm_on_averagers(&mm, c, 2);
	assert_int_equal(r.joins, 2);
	assert_memory_equal(r.last_join, "peer-B", 6);
	assert_int_equal(mm.state, KW_AVG_MM_JOINING);
}

/*
 * A leader that failed us is not asked again while the DHT lists it with the same
 * expiration (hivemind's past_attempts); once it declares anew it is. Before, every read of
 * the key (every 300 ms) asked the unreachable leader again.
 */
static void test_avg_mm_a_failed_leader_is_not_asked_again_for_the_same_declaration(void **state)
{
	struct kw_avg_mm mm;
	struct rec r;
	struct kw_avg_candidate c[2];

	(void)state;
	mm_new(&mm, &r, 0, false);
	kw_avg_mm_begin(&mm, 100.0);
	r.join_fail = 1;
	cand(&c[0], "peer-A", 10.0);
	assert_int_equal(kw_avg_mm_on_averagers(&mm, c, 1), 0);
	assert_int_equal(r.joins, 1);
	assert_int_equal(mm.state, KW_AVG_MM_SEARCHING);
	/* the next reads list it again, now beside peer-B */
	cand(&c[1], "peer-B", 20.0);
	assert_int_equal(kw_avg_mm_on_averagers(&mm, c, 2), 0);
	assert_int_equal(r.joins, 2);
	assert_memory_equal(r.last_join, "peer-B", 6);
	assert_int_equal(kw_avg_mm_on_leader_error(&mm, -KW_ECONNREFUSED), 0);
	assert_int_equal(kw_avg_mm_on_averagers(&mm, c, 2), 0);
	assert_int_equal(r.joins, 2);                  /* neither again */
	assert_int_equal(mm.state, KW_AVG_MM_SEARCHING);
	/* peer-A declares anew: asked */
	cand(&c[0], "peer-A", 30.0);
	assert_int_equal(kw_avg_mm_on_averagers(&mm, c, 2), 0);
	assert_int_equal(r.joins, 3);
	assert_memory_equal(r.last_join, "peer-A", 6);
	/* a new search forgets the attempts */
	kw_avg_mm_on_expired(&mm);
	kw_avg_mm_begin(&mm, 100.0);
	cand(&c[0], "peer-A", 10.0);
	assert_int_equal(kw_avg_mm_on_averagers(&mm, c, 1), 0);
	assert_int_equal(r.joins, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_avg_group_key_is_prefix_0b_bits),
		cmocka_unit_test(test_avg_group_key_validity_follows_the_regex),
		cmocka_unit_test(test_avg_mm_asks_only_earlier_leaders_best_first),
		cmocka_unit_test(test_avg_mm_follower_assembles_on_begin_allreduce),
		cmocka_unit_test(test_avg_mm_follower_goes_to_the_suggested_leader_on_disband),
		cmocka_unit_test(test_avg_mm_refusals_come_in_hivemind_order),
		cmocka_unit_test(test_avg_mm_client_never_leads),
		cmocka_unit_test(test_avg_mm_leader_assembles_at_target_size),
		cmocka_unit_test(test_avg_mm_expiry_leads_a_good_enough_group),
		cmocka_unit_test(test_avg_mm_expiry_alone_fails_and_the_caller_retries),
		cmocka_unit_test(test_avg_mm_a_failing_join_moves_to_the_next_leader),
		cmocka_unit_test(
			test_avg_mm_a_failed_leader_is_not_asked_again_for_the_same_declaration),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
