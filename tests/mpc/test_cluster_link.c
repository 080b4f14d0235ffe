/* test_cluster_link.c - Check suite for the cluster layer's mpc transport over net
 * (mpc/src/cluster/link.c): a step's messages carry its tag, a receive drops other
 * steps' messages within one deadline, a tag alone cancels the step, a
 * per-role due time bounds a receive, and a link that ends under a receive
 * ends it at once with the link's error (a peer that died mid-message, seen
 * as a protocol error, used to make the receive spin until its deadline, and
 * past a due time for ever). Two nodes on 127.0.0.1; the peer that breaks a
 * link is the net tests' raw peer. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mpc_cluster.h"
#include "net_harness.h"

#define PARTY_TIMEOUT_MS 3000

typedef struct {
  th_id_t ia, ib;
  net_node_t *a, *b; /* a: a party; b: its client (peer CL_CLIENT0 of a) */
  cl_step_t la, lb;
} pair_t;

static void pair_up(pair_t *p, uint64_t tag) {
  th_id(&p->ia);
  th_id(&p->ib);
  p->a = th_node(&p->ia, 0, PARTY_TIMEOUT_MS);
  p->b = th_node(&p->ib, 0, PARTY_TIMEOUT_MS);
  ck_assert_int_eq(net_peer_add(p->a, CL_CLIENT0, NULL, 0, p->ib.pk), 0);
  ck_assert_int_eq(net_peer_add(p->b, CL_P0, "127.0.0.1", net_node_port(p->a), p->ia.pk), 0);
  ck_assert_int_eq(net_connect(p->b, CL_P0), 0);
  ck_assert_int_eq(net_accept(p->a, CL_CLIENT0, 2000), 0);
  cl_step_init(&p->la, p->a, MPC_P0, CL_CLIENT0, tag, PARTY_TIMEOUT_MS);
  cl_step_init(&p->lb, p->b, MPC_CLIENT, CL_CLIENT0, tag, PARTY_TIMEOUT_MS);
}

static void pair_free(pair_t *p) {
  net_node_free(p->a);
  net_node_free(p->b);
}

static int tsend(cl_step_t *l, mpc_role_t to, const void *buf, size_t len) {
  return l->base.ops->send(&l->base, to, buf, len);
}

static int trecv(cl_step_t *l, mpc_role_t from, void *buf, size_t len) {
  return l->base.ops->recv(&l->base, from, buf, len);
}

/* Other steps' messages (another tag, any length) are dropped; the step's
 * own arrives; a tag alone cancels; in-place sends carry the tag too. */
START_TEST(tags_drop_and_cancel) {
  pair_t p;
  pair_up(&p, 0x1111);
  cl_step_t other;
  cl_step_init(&other, p.b, MPC_CLIENT, CL_CLIENT0, 0x2222, PARTY_TIMEOUT_MS);
  unsigned char big[100], got[16];
  memset(big, 7, sizeof big);
  ck_assert_int_eq(tsend(&other, MPC_P0, big, sizeof big), 0);  /* longer, other step */
  ck_assert_int_eq(tsend(&other, MPC_P0, "0123456789abcdef", 16), 0);
  ck_assert_int_eq(tsend(&p.lb, MPC_P0, "fedcba9876543210", 16), 0);
  ck_assert_int_eq(trecv(&p.la, MPC_CLIENT, got, 16), 0);
  ck_assert(memcmp(got, "fedcba9876543210", 16) == 0);
  uint8_t room[CL_TAG_BYTES + 16];
  memcpy(room + CL_TAG_BYTES, "in place, no cpy", 16);
  ck_assert_int_eq(cl_step_send_in_place(&p.lb, MPC_P0, room, 16), 0);
  ck_assert_int_eq(trecv(&p.la, MPC_CLIENT, got, 16), 0);
  ck_assert(memcmp(got, "in place, no cpy", 16) == 0);
  ck_assert_int_eq(cl_step_cancel(&other, MPC_P0), 0); /* another step's cancel */
  ck_assert_int_eq(cl_step_cancel(&p.lb, MPC_P0), 0);
  ck_assert_int_eq(trecv(&p.la, MPC_CLIENT, got, 16), TANDEM_ECANCELED);
  pair_free(&p);
}
END_TEST

/* A due time bounds a receive; past it, a message already queued is still
 * taken. */
START_TEST(due_time) {
  pair_t p;
  pair_up(&p, 0x3333);
  unsigned char got[4];
  p.la.due[MPC_CLIENT] = cl_now() + 0.2;
  double t0 = cl_now();
  ck_assert_int_eq(trecv(&p.la, MPC_CLIENT, got, 4), TANDEM_ETIMEDOUT);
  double took = cl_now() - t0;
  ck_assert_msg(took > 0.1 && took < 1.5, "a receive due in 0.2 s took %.2f s", took);
  ck_assert_int_eq(tsend(&p.lb, MPC_P0, "late", 4), 0);
  usleep(200000);
  t0 = cl_now();
  ck_assert_int_eq(trecv(&p.la, MPC_CLIENT, got, 4), 0);
  ck_assert(memcmp(got, "late", 4) == 0);
  ck_assert(cl_now() - t0 < 0.5);
  pair_free(&p);
}
END_TEST

/* The client dies in the middle of a message (a truncated frame, then the
 * end of the stream): the party's receive ends at once with the link's
 * error, whatever its deadline: the error used to read as "a longer
 * message of another step, dropped", so the receive spun until its deadline
 * and, with a due time already past, for ever. */
static void died_mid_message(double due_in) {
  th_id_t ia, ix;
  th_id(&ia);
  th_id(&ix);
  net_node_t *a = th_node(&ia, 1000, PARTY_TIMEOUT_MS);
  ck_assert_int_eq(net_peer_add(a, CL_CLIENT0, NULL, 0, ix.pk), 0);
  th_raw_t r;
  ck_assert_int_eq(th_raw_open(&r, net_node_port(a), &ix, ia.pk), 0);
  ck_assert_int_eq(net_accept(a, CL_CLIENT0, 2000), 0);
  cl_step_t l;
  cl_step_init(&l, a, MPC_P0, CL_CLIENT0, 0x4444, PARTY_TIMEOUT_MS);
  if (due_in != 0)
    l.due[MPC_CLIENT] = cl_now() + due_in;
  unsigned char msg[2500], wire[4000], got[2492];
  memset(msg, 1, sizeof msg);
  size_t n = net__msg_wire_bytes(sizeof msg, 1000);
  ck_assert_int_eq(net__msg_seal(&r.tx, CL_CHAN_DATA, msg, sizeof msg, 1000, wire), 0);
  ck_assert_int_eq(th_write(r.fd, wire, n - 700), 0);
  shutdown(r.fd, SHUT_WR);
  if (due_in < 0) {
    /* Past its due time the receive only polls: let the link end first, so
     * that the poll meets the link's error. */
    for (int i = 0; i < 300 && net_peer_up(a, CL_CLIENT0); i++)
      usleep(10000);
    ck_assert_int_eq(net_peer_up(a, CL_CLIENT0), 0);
  }
  double t0 = cl_now();
  int rc = l.base.ops->recv(&l.base, MPC_CLIENT, got, sizeof got);
  double took = cl_now() - t0;
  ck_assert_msg(rc == TANDEM_EPROTO, "receive: %s", tandem_strerror(rc));
  ck_assert_msg(took < 1.0, "the receive took %.2f s after its link ended", took);
  th_raw_close(&r);
  net_node_free(a);
}

START_TEST(peer_dies_mid_message) { died_mid_message(0); }
END_TEST

START_TEST(peer_dies_mid_message_past_due) { died_mid_message(-1.0); }
END_TEST

Suite *cluster_link_suite(void) {
  Suite *s = suite_create("cluster_link");
  TCase *tc = tcase_create("link");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, tags_drop_and_cancel);
  tcase_add_test(tc, due_time);
  tcase_add_test(tc, peer_dies_mid_message);
  tcase_add_test(tc, peer_dies_mid_message_past_due);
  suite_add_tcase(s, tc);
  return s;
}
