/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * TCP state tracking. A session's state is the connection's RFC 793 state as
 * the originator sees it (docs/DESIGN.md). As in nf_conntrack_proto_tcp.c, the
 * next state comes from a table indexed by direction, packet class and
 * current state; unlike a flag-only table, the classes that close a
 * connection are refined by sequence numbers: an ACK only counts for a FIN
 * when it covers that FIN's sequence number + 1, and an RST only counts when
 * it falls inside the window its receiver expects.
 */
#ifndef MSEG_TCP_H
#define MSEG_TCP_H

#include "mseg_abi.h"
#include "mseg_parse.h"

enum mseg_tcp_class {
	MSEG_TC_SYN,        /* SYN without ACK */
	MSEG_TC_SYNACK,     /* SYN+ACK */
	MSEG_TC_FIN,        /* FIN whose ACK does not cover the peer's FIN */
	MSEG_TC_FIN_ACKFIN, /* FIN whose ACK covers the peer's FIN */
	MSEG_TC_ACK,        /* ACK that does not cover the peer's FIN */
	MSEG_TC_ACK_FIN,    /* ACK that covers the peer's FIN */
	MSEG_TC_RST,        /* RST inside the receiver's window */
	MSEG_TC_NONE,       /* no flag that moves a state */
	MSEG_TC_MAX,
};

/* Table values beyond the states. */
#define MSEG_TS_KEEP 0xfe   /* stay in the current state */
#define MSEG_TS_REOPEN 0xff /* a new connection reuses the tuple */

#define sNO MSEG_TCP_NONE
#define sSS MSEG_TCP_SYN_SENT
#define sSR MSEG_TCP_SYN_RECV
#define sES MSEG_TCP_ESTABLISHED
#define sF1 MSEG_TCP_FIN_WAIT1
#define sF2 MSEG_TCP_FIN_WAIT2
#define sTW MSEG_TCP_TIME_WAIT
#define sCL MSEG_TCP_CLOSE
#define sCW MSEG_TCP_CLOSE_WAIT
#define sLA MSEG_TCP_LAST_ACK
#define sCG MSEG_TCP_CLOSING
#define sKP MSEG_TS_KEEP
#define sRO MSEG_TS_REOPEN

/*
 * mseg_tcp_next[dir][class][state]. Columns, in enum order:
 *          sNO  sSS  sSR  sES  sF1  sF2  sTW  sCL  sCW  sLA  sCG
 */
static const __u8 mseg_tcp_next[2][MSEG_TC_MAX][MSEG_TCP_STATE_MAX] = {
	[MSEG_DIR_ORIG] = {
		/* a retransmitted SYN changes nothing; on a finished
		 * connection it opens a new one on the same ports */
		[MSEG_TC_SYN] =
		{ sSS, sSS, sKP, sKP, sKP, sKP, sRO, sRO, sKP, sKP, sKP },
		/* simultaneous open: our SYN+ACK answers the peer's SYN */
		[MSEG_TC_SYNACK] =
		{ sKP, sSR, sSR, sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP },
		/* our FIN before the peer's: FIN_WAIT1; after the peer's but
		 * sent before we saw it: both crossed, CLOSING */
		[MSEG_TC_FIN] =
		{ sKP, sKP, sF1, sF1, sKP, sKP, sKP, sKP, sCG, sKP, sKP },
		/* our FIN acknowledging the peer's: CLOSE_WAIT -> LAST_ACK */
		[MSEG_TC_FIN_ACKFIN] =
		{ sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP, sLA, sKP, sKP },
		/* our ACK of the SYN+ACK completes the handshake */
		[MSEG_TC_ACK] =
		{ sKP, sKP, sES, sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP },
		[MSEG_TC_ACK_FIN] =
		{ sKP, sKP, sES, sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP },
		[MSEG_TC_RST] =
		{ sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL },
		[MSEG_TC_NONE] =
		{ sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP },
	},
	[MSEG_DIR_REPLY] = {
		/* the peer's SYN while ours is out: simultaneous open; on a
		 * finished connection the peer opens a new one */
		[MSEG_TC_SYN] =
		{ sKP, sSR, sKP, sKP, sKP, sKP, sRO, sRO, sKP, sKP, sKP },
		[MSEG_TC_SYNACK] =
		{ sKP, sSR, sSR, sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP },
		/* the peer's FIN: ours not out yet -> CLOSE_WAIT; ours out
		 * and not covered -> CLOSING; ours acknowledged -> TIME_WAIT */
		[MSEG_TC_FIN] =
		{ sKP, sKP, sCW, sCW, sCG, sTW, sKP, sKP, sKP, sKP, sKP },
		/* ... and a FIN (even a retransmitted one) whose ACK covers
		 * ours acknowledges it like a bare ACK would: LAST_ACK ends */
		[MSEG_TC_FIN_ACKFIN] =
		{ sKP, sKP, sCW, sCW, sTW, sTW, sKP, sKP, sKP, sCL, sTW },
		[MSEG_TC_ACK] =
		{ sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP },
		/* the peer acknowledges our FIN */
		[MSEG_TC_ACK_FIN] =
		{ sKP, sKP, sKP, sKP, sF2, sKP, sKP, sKP, sKP, sCL, sTW },
		[MSEG_TC_RST] =
		{ sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL },
		[MSEG_TC_NONE] =
		{ sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP },
	},
};

#undef sNO
#undef sSS
#undef sSR
#undef sES
#undef sF1
#undef sF2
#undef sTW
#undef sCL
#undef sCW
#undef sLA
#undef sCG
#undef sKP
#undef sRO

/* Sequence-space comparisons, modulo 2^32. */
static __always_inline bool mseg_seq_before(__u32 a, __u32 b)
{
	return (__s32)(a - b) < 0;
}

static __always_inline bool mseg_seq_after_eq(__u32 a, __u32 b)
{
	return (__s32)(a - b) >= 0;
}

/*
 * Does an RST sent by `snd` land where `rcv` would accept it? In the spirit
 * of RFC 5961: inside the receive window when the receiver has
 * acknowledged something; acknowledging the receiver's SYN when it has only
 * sent a SYN; continuing the sender's own stream when the receiver was never
 * seen (a connection picked up mid-stream).
 */
static __always_inline bool mseg_tcp_rst_valid(const struct mseg_tcp_peer *snd,
					       const struct mseg_tcp_peer *rcv,
					       const struct mseg_pkt *p)
{
	if (rcv->flags & MSEG_PEER_ACK) {
		__u32 win = rcv->max_win ? rcv->max_win : 1;

		return mseg_seq_after_eq(p->seq, rcv->ack) &&
		       mseg_seq_before(p->seq, rcv->ack + win);
	}
	if (rcv->flags & MSEG_PEER_SEEN)
		return (p->tcp_flags & MSEG_TCP_ACK) && p->ack == rcv->seq_end;
	return !(snd->flags & MSEG_PEER_SEEN) || p->seq == snd->seq_end;
}

/* Record what this packet shows of its sender's stream. */
static __always_inline void mseg_tcp_track(struct mseg_tcp_peer *snd,
					   const struct mseg_tcp_peer *rcv,
					   const struct mseg_pkt *p)
{
	__u8 fl = p->tcp_flags;
	__u32 end = p->seq + p->payload_len;
	__u32 win = p->win;

	if (fl & MSEG_TCP_SYN) {
		end++;
		snd->flags |= MSEG_PEER_SYN;
		if (p->wscale != 0xff) {
			snd->flags |= MSEG_PEER_WSCALE;
			snd->wscale = p->wscale;
		}
	} else if ((snd->flags & MSEG_PEER_WSCALE) &&
		   (rcv->flags & MSEG_PEER_WSCALE)) {
		/* RFC 7323: windows are scaled only outside SYNs, and only
		 * when both sides announced the option */
		win <<= snd->wscale;
	}
	if (fl & MSEG_TCP_FIN) {
		snd->fin_seq = p->seq + p->payload_len;
		snd->flags |= MSEG_PEER_FIN;
		end++;
	}
	if (!(snd->flags & MSEG_PEER_SEEN) || mseg_seq_before(snd->seq_end, end))
		snd->seq_end = end;
	if (fl & MSEG_TCP_ACK) {
		if (!(snd->flags & MSEG_PEER_ACK) ||
		    mseg_seq_before(snd->ack, p->ack))
			snd->ack = p->ack;
		snd->flags |= MSEG_PEER_ACK;
	}
	if (win > snd->max_win)
		snd->max_win = win;
	snd->flags |= MSEG_PEER_SEEN;
}

static __always_inline int mseg_tcp_classify(const struct mseg_pkt *p,
					     const struct mseg_tcp_peer *rcv)
{
	__u8 fl = p->tcp_flags;
	bool acks_fin = (fl & MSEG_TCP_ACK) && (rcv->flags & MSEG_PEER_FIN) &&
			mseg_seq_after_eq(p->ack, rcv->fin_seq + 1);

	if (fl & MSEG_TCP_RST)
		return MSEG_TC_RST;
	if (fl & MSEG_TCP_SYN)
		return (fl & MSEG_TCP_ACK) ? MSEG_TC_SYNACK : MSEG_TC_SYN;
	if (fl & MSEG_TCP_FIN)
		return acks_fin ? MSEG_TC_FIN_ACKFIN : MSEG_TC_FIN;
	if (fl & MSEG_TCP_ACK)
		return acks_fin ? MSEG_TC_ACK_FIN : MSEG_TC_ACK;
	return MSEG_TC_NONE;
}

enum mseg_tcp_result {
	MSEG_TCP_OK,
	MSEG_TCP_RST_IGNORED, /* out-of-window RST: no state change */
	MSEG_TCP_REOPEN,      /* a SYN reuses a finished connection's tuple */
};

/*
 * Advance `s` for a packet travelling in `dir`. The class is taken before
 * the packet's own facts are recorded, so a FIN+ACK is judged against what
 * the peer had sent before it.
 */
static __always_inline int mseg_tcp_update(struct mseg_session *s, int dir,
					   const struct mseg_pkt *p)
{
	struct mseg_tcp_peer *snd = &s->tcp[dir & 1];
	struct mseg_tcp_peer *rcv = &s->tcp[!(dir & 1)];
	__u8 state = s->state;
	int cls = mseg_tcp_classify(p, rcv);
	__u8 next;

	if (cls == MSEG_TC_RST && !mseg_tcp_rst_valid(snd, rcv, p))
		return MSEG_TCP_RST_IGNORED;
	if (state >= MSEG_TCP_STATE_MAX)
		state = MSEG_TCP_NONE;
	next = mseg_tcp_next[dir & 1][cls][state];
	if (next == MSEG_TS_REOPEN)
		return MSEG_TCP_REOPEN;

	/* Mark our FIN acknowledged before recording the ACK itself. */
	if (cls == MSEG_TC_ACK_FIN || cls == MSEG_TC_FIN_ACKFIN)
		rcv->flags |= MSEG_PEER_FIN_ACKED;
	mseg_tcp_track(snd, rcv, p);
	if (next != MSEG_TS_KEEP)
		s->state = next;
	return MSEG_TCP_OK;
}

/*
 * State of a connection first seen with this packet: SYN opens it, SYN+ACK
 * or a plain ACK pick it up mid-handshake or mid-stream (loose mode only);
 * anything else (FIN, RST, no flags) cannot start a session: MSEG_TCP_NONE.
 */
static __always_inline __u8 mseg_tcp_first_state(const struct mseg_pkt *p)
{
	__u8 fl = p->tcp_flags & (MSEG_TCP_SYN | MSEG_TCP_ACK | MSEG_TCP_FIN |
				  MSEG_TCP_RST);

	if (fl == MSEG_TCP_SYN)
		return MSEG_TCP_SYN_SENT;
	if (fl == (MSEG_TCP_SYN | MSEG_TCP_ACK))
		return MSEG_TCP_SYN_RECV;
	if (fl == MSEG_TCP_ACK)
		return MSEG_TCP_ESTABLISHED;
	return MSEG_TCP_NONE;
}

#endif /* MSEG_TCP_H */
