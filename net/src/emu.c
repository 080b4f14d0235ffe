/* emu.c - link emulation of a net node (cfg.emu_delay_us, cfg.emu_rate_bps):
 * frames leave for the socket when an emulated wire of that latency and rate
 * would deliver them, for benchmarks of a LAN or WAN on loopback. With
 * emulation off, net__emit just starts the write.
 *
 * With link emulation on, frames pass through a per-connection queue of held
 * frames (net__emit), after the write queue and before the socket. A sender
 * puts its frames there itself, under node->mu, with the time each may reach
 * the socket; the loop writes them when a timerfd armed for the first one's
 * time (absolute CLOCK_MONOTONIC nanoseconds) turns readable. libuv's own
 * timers count milliseconds, too coarse for a LAN's 150 us; a timerfd fires
 * within the scheduler's wake-up latency (tens of microseconds), and the loop
 * sleeps in epoll meanwhile.
 */
#include <errno.h>

#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "net_int.h"

/* The emulation's clock: CLOCK_MONOTONIC in nanoseconds, the clock of the
 * timerfd, so a frame's due time is the timer's absolute deadline. */
static uint64_t emu_now(void) {
  struct timespec ts;
  (void)clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Arms c's timerfd for its first held frame's due time; one already past
 * fires at once. A plain system call on the fd, so a sender may arm it as
 * well as the loop (both under node->mu, which orders the arming with the
 * queue it reflects). The due time is never 0, which would disarm. */
static void emu_arm(net__conn_t *c) {
  uint64_t due = c->emu_head->due;
  struct itimerspec its = {.it_value = {.tv_sec = (time_t)(due / 1000000000u),
                                        .tv_nsec = (long)(due % 1000000000u)}};
  (void)timerfd_settime(c->emu_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* Sends w now, or with link emulation on, when the emulated wire would
 * deliver it: it leaves once the wire is free and its bytes have been
 * serialised at emu_rate_bps, and arrives emu_delay_us later. Frames keep
 * their order (departures only grow), and they stay counted in c->queued
 * until written, so senders still wait on a full queue. With emulation on
 * this touches no libuv handle, so senders call it too (under node->mu). */
int net__emit(net__conn_t *c, net__wreq_t *w) {
  net_node_t *n = c->node;
  uint64_t now, start;
  if (!n->emu)
    return net__start_write(c, w);
  now = emu_now();
  start = c->emu_busy > now ? c->emu_busy : now;
  if (n->cfg.emu_rate_bps)
    start += (uint64_t)((double)(w->len - w->off) * 1e9 / (double)n->cfg.emu_rate_bps);
  c->emu_busy = start;
  w->due = start + (uint64_t)n->cfg.emu_delay_us * 1000u;
  w->next = NULL;
  if (c->emu_tail) {
    c->emu_tail->next = w;
    c->emu_tail = w;
    return 0;
  }
  c->emu_head = c->emu_tail = w;
  emu_arm(c);
  return 0;
}

/* The timerfd fired: writes the held frames that are due, re-arms for the
 * next, and after the last one finishes a graceful close that waited for
 * them. The expiry count is read first (else the fd stays readable and the
 * loop would spin); a sender arming the timer meanwhile waits on node->mu,
 * and the queue is looked at only after the read, so no expiry is lost. */
void net__emu_poll_cb(uv_poll_t *h, int status, int events) {
  net__conn_t *c = h->data;
  net_node_t *n = c->node;
  uint64_t now, ticks;
  int r = status; /* < 0: libuv stopped watching the fd, the frames cannot go */
  (void)events;
  uv_mutex_lock(&n->mu);
  while (r == 0 && read(c->emu_fd, &ticks, sizeof(ticks)) < 0 && errno == EINTR)
    ;
  now = emu_now();
  while (c->emu_head && c->emu_head->due <= now && r == 0) {
    net__wreq_t *w = c->emu_head;
    c->emu_head = w->next;
    if (!c->emu_head)
      c->emu_tail = NULL;
    r = net__start_write(c, w);
  }
  if (r < 0) {
    net__wreq_list_free(c, &c->emu_head, &c->emu_tail);
    if (c->state == NET_C_CLOSING)
      net__conn_close_handles(c);
    else
      net__conn_fail(c, TANDEM_ECLOSED);
  } else if (c->emu_head) {
    emu_arm(c);
  } else if (c->emu_shut) {
    c->emu_shut = 0;
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, net__shutdown_cb) != 0)
      net__conn_close_handles(c);
  }
  uv_mutex_unlock(&n->mu);
}
