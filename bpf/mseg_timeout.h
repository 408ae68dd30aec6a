/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Session timeouts. Shared by the data path and mseg-gc, so the packet that
 * finds an entry expired and the collector that reclaims it agree exactly.
 */
#ifndef MSEG_TIMEOUT_H
#define MSEG_TIMEOUT_H

#include <stdbool.h>
#include <linux/in.h>

#include "mseg_abi.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif

#define MSEG_NSEC_PER_SEC 1000000000ULL

#define MSEG_CFG_OR(cfg, field, def) ((cfg)->field ? (cfg)->field : (def))

/*
 * Whether more than `span` nanoseconds have passed since `then`. The data
 * path's clock (mseg_clock.h) lags by up to a jiffy, so `then`, stamped on
 * another CPU, may lie after `now`: that is no time at all, not 2^64 ns.
 */
static __always_inline bool mseg_older_than(__u64 now, __u64 then, __u64 span)
{
	return now > then && now - then > span;
}

static __always_inline __u64 mseg_tcp_timeout(const struct mseg_config *cfg,
					      __u8 state)
{
	switch (state) {
	case MSEG_TCP_SYN_SENT:
		return MSEG_CFG_OR(cfg, to_syn_sent, MSEG_DEF_TO_SYN_SENT);
	case MSEG_TCP_SYN_RECV:
		return MSEG_CFG_OR(cfg, to_syn_recv, MSEG_DEF_TO_SYN_RECV);
	case MSEG_TCP_ESTABLISHED:
		return MSEG_CFG_OR(cfg, to_established,
				   MSEG_DEF_TO_ESTABLISHED);
	case MSEG_TCP_FIN_WAIT1:
	case MSEG_TCP_FIN_WAIT2:
	case MSEG_TCP_CLOSING:
		return MSEG_CFG_OR(cfg, to_fin_wait, MSEG_DEF_TO_FIN_WAIT);
	case MSEG_TCP_CLOSE_WAIT:
		return MSEG_CFG_OR(cfg, to_close_wait, MSEG_DEF_TO_CLOSE_WAIT);
	case MSEG_TCP_LAST_ACK:
		return MSEG_CFG_OR(cfg, to_last_ack, MSEG_DEF_TO_LAST_ACK);
	case MSEG_TCP_TIME_WAIT:
		return MSEG_CFG_OR(cfg, to_time_wait, MSEG_DEF_TO_TIME_WAIT);
	case MSEG_TCP_CLOSE:
		return MSEG_CFG_OR(cfg, to_close, MSEG_DEF_TO_CLOSE);
	}
	return MSEG_CFG_OR(cfg, to_syn_sent, MSEG_DEF_TO_SYN_SENT);
}

static __always_inline bool mseg_half_open_state(__u8 state)
{
	return state == MSEG_TCP_SYN_SENT || state == MSEG_TCP_SYN_RECV;
}

/* Picked up mid-stream (loose mode) and not yet answered by the other side. */
static __always_inline bool mseg_session_unconfirmed(const struct mseg_session_key *k,
						     const struct mseg_session *s)
{
	return k->proto == IPPROTO_TCP && (s->flags & MSEG_SESS_PICKUP) &&
	       !(s->flags & MSEG_SESS_REPLIED);
}

/*
 * Half-open, for SYN-flood detection, the pressure counts and the short
 * flood timeout: a TCP session in SYN_SENT or SYN_RECV, or picked up and
 * unconfirmed (a spoofed ACK opens one of those as cheaply as a SYN).
 */
static __always_inline bool mseg_half_open_of(__u8 proto, __u8 state,
					      __u8 flags)
{
	return proto == IPPROTO_TCP &&
	       (mseg_half_open_state(state) ||
		((flags & MSEG_SESS_PICKUP) && !(flags & MSEG_SESS_REPLIED)));
}

static __always_inline bool mseg_session_half_open(const struct mseg_session_key *k,
						   const struct mseg_session *s)
{
	return mseg_half_open_of(k->proto, s->state, s->flags);
}

/* Anything but TCP that the responder never answered. */
static __always_inline bool mseg_session_unreplied(const struct mseg_session_key *k,
						   const struct mseg_session *s)
{
	return k->proto != IPPROTO_TCP && !(s->flags & MSEG_SESS_REPLIED);
}

/*
 * Whether mseg_pressure's flags shorten the unanswered sessions' timeouts
 * (mseg_timeout_ns): a SYN flood, or a degraded table.
 */
static __always_inline bool mseg_pressure_shortens(__u32 flags)
{
	return flags & (MSEG_PRESSURE_FLOOD | MSEG_PRESSURE_DEGRADED);
}

static __always_inline __u64 mseg_min_u64(__u64 a, __u64 b)
{
	return a < b ? a : b;
}

/*
 * The one expiry rule (docs/DESIGN.md, "Pressure and SYN floods"). Under
 * pressure (a SYN flood, or a degraded table) the sessions nobody has
 * answered, half-open TCP and unreplied UDP/ICMP alike, get the short
 * flood timeout, so a flood cannot hold the table; the answered ones keep
 * theirs. A picked-up TCP session lives timeout_unconfirmed until the other
 * side answers.
 */
static __always_inline __u64 mseg_timeout_ns(const struct mseg_config *cfg,
					      const struct mseg_session_key *k,
					      const struct mseg_session *s,
					      bool pressure)
{
	__u64 sec;

	switch (k->proto) {
	case IPPROTO_TCP:
		sec = mseg_tcp_timeout(cfg, s->state);
		if (mseg_session_unconfirmed(k, s))
			sec = mseg_min_u64(sec, MSEG_CFG_OR(cfg, to_unconfirmed,
							    MSEG_DEF_TO_UNCONFIRMED));
		break;
	case IPPROTO_UDP:
		sec = (s->flags & MSEG_SESS_REPLIED) ?
			      MSEG_CFG_OR(cfg, to_udp_replied,
					  MSEG_DEF_TO_UDP_REPLIED) :
			      MSEG_CFG_OR(cfg, to_udp, MSEG_DEF_TO_UDP);
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		sec = MSEG_CFG_OR(cfg, to_icmp, MSEG_DEF_TO_ICMP);
		break;
	default:
		sec = MSEG_CFG_OR(cfg, to_other, MSEG_DEF_TO_OTHER);
	}
	if (pressure &&
	    (mseg_session_half_open(k, s) || mseg_session_unreplied(k, s)))
		sec = mseg_min_u64(sec, MSEG_CFG_OR(cfg, flood_syn_timeout,
						    MSEG_DEF_FLOOD_SYN_TIMEOUT));
	return sec * MSEG_NSEC_PER_SEC;
}

/*
 * Expired, judged on `last`, the session's last_seen_ns as the caller read
 * it once (the claim protocol of mseg_session.h compares against it). An
 * entry claimed for deletion counts as expired.
 */
static __always_inline bool mseg_session_expired_at(const struct mseg_config *cfg,
						    const struct mseg_session_key *k,
						    const struct mseg_session *s,
						    __u64 last, __u64 now,
						    bool pressure)
{
	if (last == MSEG_SESSION_DYING)
		return true;
	/* every timeout is a second or more: a busy session skips the rest */
	if (!mseg_older_than(now, last, MSEG_NSEC_PER_SEC))
		return false;
	return mseg_older_than(now, last, mseg_timeout_ns(cfg, k, s, pressure));
}

static __always_inline bool mseg_session_expired(const struct mseg_config *cfg,
						 const struct mseg_session_key *k,
						 const struct mseg_session *s,
						 __u64 now, bool pressure)
{
	return mseg_session_expired_at(cfg, k, s, s->last_seen_ns, now,
				       pressure);
}

#endif /* MSEG_TIMEOUT_H */
