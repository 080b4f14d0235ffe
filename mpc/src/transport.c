/* transport.c - the counting wrappers every protocol role sends through.
 *
 * The protocol layer never calls a transport's ops directly: it calls
 * mpc_transport_send, mpc_transport_recv and mpc_transport_exchange, which check the arguments
 * once for every implementation (the in-memory hub of memnet.c, net/'s
 * sockets), forward to t->ops, and charge the bytes of each successful call to
 * t->stats under the phase the protocol has set in t->phase. An exchange
 * between P0 and P1 is the unit of the round budget and is counted as one
 * round; exchanges with the dealer, the client or the owner move bytes but are
 * not inter-party rounds. Time (t->stats.seconds) is the protocol's to measure,
 * so it is not touched here.
 */
#include "mpc.h"

/* Role and phase arrive as enums that a caller may have filled from a config
 * or a cast; they index the counters, so they are range-checked as unsigned
 * (which also rejects negative values). */
static int role_ok(mpc_role_t r) {
  return (unsigned)r < MPC_NROLES;
}

/* Checks what every call needs: a transport with ops, a valid own role and
 * phase (both index stats), and a peer that is another valid role. */
static int check_common(const mpc_transport_t *t, mpc_role_t peer) {
  if (t == NULL || t->ops == NULL)
    return TANDEM_EINVAL;
  if (!role_ok(t->self) || !role_ok(peer) || peer == t->self)
    return TANDEM_EINVAL;
  if ((unsigned)t->phase >= MPC_NPHASES)
    return TANDEM_EINVAL;
  return 0;
}

static int is_round(mpc_role_t a, mpc_role_t b) {
  return (a == MPC_P0 && b == MPC_P1) || (a == MPC_P1 && b == MPC_P0);
}

int mpc_transport_send(mpc_transport_t *t, mpc_role_t to, const void *buf, size_t len) {
  int rc = check_common(t, to);
  if (rc != 0)
    return rc;
  if (t->ops->send == NULL || (buf == NULL && len > 0))
    return TANDEM_EINVAL;
  rc = t->ops->send(t, to, buf, len);
  if (rc == 0)
    t->stats.sent[to][t->phase] += len;
  return rc;
}

int mpc_transport_recv(mpc_transport_t *t, mpc_role_t from, void *buf, size_t len) {
  int rc = check_common(t, from);
  if (rc != 0)
    return rc;
  if (t->ops->recv == NULL || (buf == NULL && len > 0))
    return TANDEM_EINVAL;
  rc = t->ops->recv(t, from, buf, len);
  if (rc == 0)
    t->stats.recvd[from][t->phase] += len;
  return rc;
}

int mpc_transport_exchange(mpc_transport_t *t, mpc_role_t peer, const void *sbuf,
                     size_t slen, void *rbuf, size_t rlen) {
  int rc = check_common(t, peer);
  if (rc != 0)
    return rc;
  if (t->ops->exchange == NULL || (sbuf == NULL && slen > 0) ||
      (rbuf == NULL && rlen > 0))
    return TANDEM_EINVAL;
  rc = t->ops->exchange(t, peer, sbuf, slen, rbuf, rlen);
  if (rc != 0)
    return rc;
  /* The phase is read after the call, as for send and recv: the protocol
   * changes it only between calls on its own thread. */
  t->stats.sent[peer][t->phase] += slen;
  t->stats.recvd[peer][t->phase] += rlen;
  if (is_round(t->self, peer))
    t->stats.rounds[t->phase]++;
  return 0;
}
