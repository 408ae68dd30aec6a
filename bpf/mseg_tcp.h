/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * TCP tracking. A session's state is the connection's RFC 793 state as the
 * originator sees it (docs/DESIGN.md, "TCP state machine"). Three checks
 * stand between a segment and that state, so a third party who knows the
 * 4-tuple but not the sequence numbers cannot steer it:
 *
 *  - the flags: a combination no TCP sends (SYN+FIN, a bare FIN, none) is
 *    invalid, as in nf_conntrack's tcp_error;
 *  - the table: the next state comes from mseg_tcp_next[dir][class][state],
 *    where the classes that close a connection are refined by sequence
 *    numbers (an ACK only counts for a FIN when it covers FIN seq + 1);
 *    some cells ignore the segment or call it invalid;
 *  - the window, in the manner of nf_conntrack's tcp_in_window: per side,
 *    the highest sequence end sent, the right edge the other side's acks
 *    and windows allowed, the largest window and the highest ack; a segment
 *    whose sequence or ack lies outside what the peers could have sent or
 *    advertised changes nothing. An RST must also carry the exact expected
 *    sequence number (RFC 5961).
 *
 * mseg_tcp_check() decides on copies of the two peer records and never
 * writes the session; the caller commits the copies and the next state
 * only when the verdict is MSEG_TCP_ACCEPT. The common case (both sides
 * seen, no SYN) needs no copies: mseg_tcp_check_fast() reads the session's
 * records and mseg_tcp_commit() writes an accepted segment into them.
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
	MSEG_TC_RST,        /* RST */
	MSEG_TC_NONE,       /* no flag that moves a state */
	MSEG_TC_MAX,
};

/* Table values beyond the states. */
#define MSEG_TS_KEEP 0xfc    /* stay in the current state (window checked) */
#define MSEG_TS_IGNORE 0xfd  /* pass it, change nothing, check nothing */
#define MSEG_TS_INVALID 0xfe /* no connection sends this now */
#define MSEG_TS_REOPEN 0xff  /* a new connection reuses the tuple */

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
#define sIG MSEG_TS_IGNORE
#define sIV MSEG_TS_INVALID
#define sRO MSEG_TS_REOPEN

/* Columns of the table: the states, padded so a masked index stays inside. */
#define MSEG_TCP_COLS 16
_Static_assert(MSEG_TCP_STATE_MAX <= MSEG_TCP_COLS, "state columns");
_Static_assert(MSEG_TC_MAX == 8, "class rows");

/*
 * mseg_tcp_next[dir][class][state]. Columns, in enum order:
 *          sNO  sSS  sSR  sES  sF1  sF2  sTW  sCL  sCW  sLA  sCG
 * The NONE column is never read: a TCP session is never opened in NONE.
 */
static const __u8 mseg_tcp_next[2][MSEG_TC_MAX][MSEG_TCP_COLS] = {
	[MSEG_DIR_ORIG] = {
		/* a retransmitted SYN changes nothing; on a finished
		 * connection it opens a new one on the same ports; on an open
		 * one the receiver answers it (RFC 5961), it means nothing */
		[MSEG_TC_SYN] =
		{ sSS, sSS, sIG, sIG, sIG, sIG, sRO, sRO, sIG, sIG, sIG },
		/* simultaneous open: our SYN+ACK answers the peer's SYN; a
		 * SYN+ACK after our own SYN alone answers nothing */
		[MSEG_TC_SYNACK] =
		{ sIV, sIV, sSR, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sIG },
		/* our FIN before the peer's: FIN_WAIT1; after the peer's but
		 * sent before we saw it: both crossed, CLOSING; before the
		 * peer answered our SYN: invalid, as in nf_conntrack */
		[MSEG_TC_FIN] =
		{ sIV, sIV, sF1, sF1, sKP, sKP, sKP, sKP, sCG, sKP, sKP },
		/* our FIN acknowledging the peer's: CLOSE_WAIT -> LAST_ACK */
		[MSEG_TC_FIN_ACKFIN] =
		{ sIV, sIV, sKP, sKP, sKP, sKP, sKP, sKP, sLA, sKP, sKP },
		/* our ACK of the SYN+ACK completes the handshake; an ACK
		 * before any SYN+ACK acknowledges nothing */
		[MSEG_TC_ACK] =
		{ sIV, sIV, sES, sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP },
		[MSEG_TC_ACK_FIN] =
		{ sIV, sIV, sES, sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP },
		[MSEG_TC_RST] =
		{ sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL },
		[MSEG_TC_NONE] =
		{ sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV },
	},
	[MSEG_DIR_REPLY] = {
		/* the peer's SYN while ours is out: simultaneous open; on a
		 * finished connection the peer opens a new one */
		[MSEG_TC_SYN] =
		{ sIV, sSR, sIG, sIG, sIG, sIG, sRO, sRO, sIG, sIG, sIG },
		/* the answer to our SYN, or its retransmission; a late one
		 * changes nothing */
		[MSEG_TC_SYNACK] =
		{ sIV, sSR, sKP, sIG, sIG, sIG, sIG, sIG, sIG, sIG, sIG },
		/* the peer's FIN: ours not out yet -> CLOSE_WAIT; ours out
		 * and not covered -> CLOSING; ours acknowledged -> TIME_WAIT */
		[MSEG_TC_FIN] =
		{ sIV, sIV, sCW, sCW, sCG, sTW, sKP, sKP, sKP, sKP, sKP },
		/* ... and a FIN (even a retransmitted one) whose ACK covers
		 * ours acknowledges it like a bare ACK would: LAST_ACK ends */
		[MSEG_TC_FIN_ACKFIN] =
		{ sIV, sIV, sCW, sCW, sTW, sTW, sKP, sKP, sKP, sCL, sTW },
		/* an ACK while our SYN is unanswered: a challenge ACK from an
		 * old connection, or a half-open one: ignored */
		[MSEG_TC_ACK] =
		{ sIV, sIG, sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP, sKP },
		/* the peer acknowledges our FIN */
		[MSEG_TC_ACK_FIN] =
		{ sIV, sIG, sKP, sKP, sF2, sKP, sKP, sKP, sKP, sCL, sTW },
		[MSEG_TC_RST] =
		{ sIV, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL, sCL },
		[MSEG_TC_NONE] =
		{ sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV, sIV },
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
#undef sIG
#undef sIV
#undef sRO

/* Sequence-space comparisons, modulo 2^32. */
static __always_inline bool mseg_seq_before(__u32 a, __u32 b)
{
	return (__s32)(a - b) < 0;
}

static __always_inline bool mseg_seq_after(__u32 a, __u32 b)
{
	return (__s32)(b - a) < 0;
}

static __always_inline bool mseg_seq_after_eq(__u32 a, __u32 b)
{
	return (__s32)(a - b) >= 0;
}

/*
 * The flag combinations a TCP sends (PSH aside): nf_conntrack's
 * tcp_valid_flags over the bits mseg_parse.h keeps.
 */
static __always_inline bool mseg_tcp_flags_valid(__u8 fl)
{
	fl &= ~MSEG_TCP_PSH;
	return fl == MSEG_TCP_SYN || fl == (MSEG_TCP_SYN | MSEG_TCP_ACK) ||
	       fl == MSEG_TCP_RST || fl == (MSEG_TCP_RST | MSEG_TCP_ACK) ||
	       fl == (MSEG_TCP_FIN | MSEG_TCP_ACK) || fl == MSEG_TCP_ACK;
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

/* The sequence space a segment occupies ends here (SYN and FIN count 1). */
static __always_inline __u32 mseg_tcp_end(const struct mseg_pkt *p)
{
	return p->seq + p->payload_len + !!(p->tcp_flags & MSEG_TCP_SYN) +
	       !!(p->tcp_flags & MSEG_TCP_FIN);
}

/* RFC 7323: windows scale outside SYNs, when both sides announced it. */
static __always_inline __u32 mseg_tcp_shift(const struct mseg_tcp_peer *snd,
					    const struct mseg_tcp_peer *rcv)
{
	if ((snd->flags & MSEG_PEER_WSCALE) && (rcv->flags & MSEG_PEER_WSCALE))
		return snd->wscale;
	return 0;
}

/* A SYN or SYN+ACK (re)starts its sender's record. */
static __always_inline void mseg_tcp_init_syn(struct mseg_tcp_peer *snd,
					      const struct mseg_pkt *p,
					      __u32 end)
{
	__builtin_memset(snd, 0, sizeof(*snd));
	snd->seq_end = end;
	snd->max_end = end;
	snd->max_win = p->win ? p->win : 1;
	snd->flags = MSEG_PEER_SEEN | MSEG_PEER_SYN;
	if (p->wscale != 0xff) {
		snd->flags |= MSEG_PEER_WSCALE;
		snd->wscale = p->wscale < MSEG_TCP_MAX_WSCALE ?
				      p->wscale : MSEG_TCP_MAX_WSCALE;
	}
}

/*
 * A session picked up mid-stream: its window scales are unknown, so both
 * sides are taken to scale by the most RFC 7323 allows. That widens the
 * windows (nothing legitimate is refused) and keeps every other check.
 */
static __always_inline void mseg_tcp_pickup(struct mseg_tcp_peer *a,
					    struct mseg_tcp_peer *b)
{
	a->flags |= MSEG_PEER_WSCALE;
	a->wscale = MSEG_TCP_MAX_WSCALE;
	b->flags |= MSEG_PEER_WSCALE;
	b->wscale = MSEG_TCP_MAX_WSCALE;
}

/* RFC 5961: the smallest window a TCP acknowledges across, as nf_conntrack. */
#define MSEG_TCP_MIN_ACK_WINDOW 66000

/*
 * Is the RST exact? Its sequence number must be the receiver's next
 * expected one: the highest ack the receiver sent (which the ACK answering
 * an inexact RST refreshes: RFC 5961's challenge ACK), or the sender's own
 * next sequence number before this segment, snd_end (an RST right after
 * its data, before the receiver acknowledged it). While the receiver has only sent a SYN, the RST must
 * acknowledge that SYN (RFC 793, SYN-SENT).
 */
static __always_inline bool mseg_tcp_rst_exact(const struct mseg_tcp_peer *rcv,
					       const struct mseg_pkt *p,
					       bool snd_seen, __u32 snd_end)
{
	if (rcv->flags & MSEG_PEER_ACK)
		return p->seq == rcv->ack || (snd_seen && p->seq == snd_end);
	if (rcv->flags & MSEG_PEER_SEEN)
		return (p->tcp_flags & MSEG_TCP_ACK) && p->ack == rcv->seq_end;
	return snd_seen && p->seq == snd_end;
}

enum mseg_tcp_verdict {
	MSEG_TCP_ACCEPT,        /* commit the peers and the next state */
	MSEG_TCP_IGNORE,        /* pass it; nothing changes */
	MSEG_TCP_INVALID,       /* fits no connection: strict mode drops it */
	MSEG_TCP_OUT_OF_WINDOW, /* outside the window: strict mode drops it */
	MSEG_TCP_RST_INEXACT,   /* RST in the window, not at the next seq */
	MSEG_TCP_REOPEN,        /* a SYN reuses a finished connection's tuple */
};

/*
 * The ack a segment is judged on: its own, or rcv.seq_end when it carries
 * none (no ACK flag, or an RST|ACK with ack 0, which some stacks send).
 */
static __always_inline __u32 mseg_tcp_ack(const struct mseg_tcp_peer *rcv,
					  const struct mseg_pkt *p)
{
	__u8 fl = p->tcp_flags;

	if (!(fl & MSEG_TCP_ACK) || ((fl & MSEG_TCP_RST) && p->ack == 0))
		return rcv->seq_end;
	return p->ack;
}

/*
 * nf_conntrack's tcp_in_window bounds, on what the two sides had shown
 * before this segment:
 *   I    seq <= snd.max_end                 (the receiver allowed it)
 *   II   end >= snd.seq_end - rcv.max_win   (not older than a window)
 *   III  ack <= rcv.seq_end                 (acks nothing unsent)
 *   IV   ack >= rcv.seq_end - max(snd.max_win, 66000)
 * (III and IV only when there is something to check the ack against).
 * SACK blocks are not read: a right edge never lies beyond rcv.seq_end, and
 * the cumulative ack alone keeps IV (what is in flight beyond it never
 * exceeds the acknowledging side's window).
 */
static __always_inline bool mseg_tcp_bounds(const struct mseg_tcp_peer *snd,
					    const struct mseg_tcp_peer *rcv,
					    const struct mseg_pkt *p, __u32 end,
					    __u32 ack, bool check_ack)
{
	__u32 max_ack_win = snd->max_win > MSEG_TCP_MIN_ACK_WINDOW ?
				    snd->max_win : MSEG_TCP_MIN_ACK_WINDOW;

	return !mseg_seq_after(p->seq, snd->max_end) &&
	       !(rcv->max_win &&
		 mseg_seq_before(end, snd->seq_end - rcv->max_win)) &&
	       !(check_ack && (mseg_seq_after(ack, rcv->seq_end) ||
			       mseg_seq_before(ack, rcv->seq_end - max_ack_win)));
}

/* What a segment inside the window shows of its sender, and of the room it gives the receiver. */
static __always_inline void mseg_tcp_advance(struct mseg_tcp_peer *snd,
					     struct mseg_tcp_peer *rcv,
					     const struct mseg_pkt *p, __u32 end,
					     __u32 ack)
{
	__u8 fl = p->tcp_flags;
	__u32 win = p->win;

	if (!(fl & MSEG_TCP_SYN))
		win <<= mseg_tcp_shift(snd, rcv);
	if (snd->max_win < win)
		snd->max_win = win;
	if (mseg_seq_after(end, snd->seq_end))
		snd->seq_end = end;
	if (fl & MSEG_TCP_ACK) {
		if (!(snd->flags & MSEG_PEER_ACK) || mseg_seq_after(ack, snd->ack))
			snd->ack = ack;
		snd->flags |= MSEG_PEER_ACK;
	}
	if (rcv->max_win && mseg_seq_after(end, snd->max_end))
		rcv->max_win += end - snd->max_end;
	if (mseg_seq_after(ack + win, rcv->max_end - 1)) {
		rcv->max_end = ack + win;
		if (!win)
			rcv->max_end++; /* room for a zero-window probe */
	}
}

/*
 * nf_conntrack's tcp_in_window on snd (the segment's sender) and rcv: first
 * what a segment from a side never seen before tells of it (a SYN, or a
 * pickup's first segment), or a SYN with a new ISN during the handshake;
 * then the bounds; then, when they hold, the advance.
 */
static __always_inline bool mseg_tcp_window(struct mseg_tcp_peer *snd,
					    struct mseg_tcp_peer *rcv,
					    const struct mseg_pkt *p, __u8 state)
{
	__u8 fl = p->tcp_flags;
	__u32 end = mseg_tcp_end(p);
	__u32 ack = mseg_tcp_ack(rcv, p);
	/* nothing to check the ack against while the receiver is unseen */
	bool check_ack = (rcv->flags & MSEG_PEER_SEEN) ||
			 !(snd->flags & MSEG_PEER_SEEN);

	if (!(snd->flags & MSEG_PEER_SEEN)) {
		if (fl & MSEG_TCP_SYN) {
			mseg_tcp_init_syn(snd, p, end);
			if (!(fl & MSEG_TCP_ACK))
				return true; /* the peer's SYN: simultaneous open */
		} else {
			/* its history is lost to us: take what it says */
			__u32 swin = p->win << mseg_tcp_shift(snd, rcv);

			snd->seq_end = end;
			snd->max_win = swin ? swin : 1;
			snd->max_end = end + snd->max_win;
			snd->flags |= MSEG_PEER_SEEN;
			if (!(rcv->flags & MSEG_PEER_SEEN)) {
				rcv->seq_end = ack;
				rcv->max_end = ack;
			} else if (ack == rcv->seq_end + 1) {
				rcv->seq_end++; /* the answer to a keepalive */
			}
		}
	} else if ((fl & MSEG_TCP_SYN) && mseg_seq_after(end, snd->seq_end) &&
		   (state == MSEG_TCP_SYN_SENT || state == MSEG_TCP_SYN_RECV)) {
		/* a new ISN in the handshake (RFC 793: a restarted TCP) */
		mseg_tcp_init_syn(snd, p, end);
	}
	if (!mseg_tcp_bounds(snd, rcv, p, end, ack, check_ack))
		return false;
	mseg_tcp_advance(snd, rcv, p, end, ack);
	return true;
}

/*
 * The flags and the table's verdict on a segment travelling in `dir` on a
 * session in `state`: MSEG_TCP_ACCEPT when the window is to decide, with
 * the table's cell in *cell and the segment's class in *cls.
 */
static __always_inline int mseg_tcp_step(const struct mseg_pkt *p,
					 const struct mseg_tcp_peer *rcv,
					 int dir, __u8 state, __u8 *cell,
					 int *cls)
{
	__u8 n;

	*cls = mseg_tcp_classify(p, rcv);
	if (!mseg_tcp_flags_valid(p->tcp_flags))
		return MSEG_TCP_INVALID;
	if (state >= MSEG_TCP_STATE_MAX)
		state = MSEG_TCP_NONE;
	/* keep clang from indexing with a copy the verifier never saw bounded */
	asm volatile("" : "+r"(state));
	n = mseg_tcp_next[dir & 1][*cls & (MSEG_TC_MAX - 1)]
			 [state & (MSEG_TCP_COLS - 1)];
	*cell = n;
	if (n == MSEG_TS_REOPEN)
		return MSEG_TCP_REOPEN;
	if (n == MSEG_TS_IGNORE)
		return MSEG_TCP_IGNORE;
	if (n == MSEG_TS_INVALID)
		return MSEG_TCP_INVALID;
	return MSEG_TCP_ACCEPT;
}

/* The FIN a segment carries, and ours it acknowledges. */
static __always_inline void mseg_tcp_fins(struct mseg_tcp_peer *snd,
					  struct mseg_tcp_peer *rcv,
					  const struct mseg_pkt *p, int cls)
{
	if (p->tcp_flags & MSEG_TCP_FIN) {
		snd->fin_seq = p->seq + p->payload_len;
		snd->flags |= MSEG_PEER_FIN;
	}
	if (cls == MSEG_TC_ACK_FIN || cls == MSEG_TC_FIN_ACKFIN)
		rcv->flags |= MSEG_PEER_FIN_ACKED;
}

/*
 * Judge a segment travelling in `dir` on a session in `state`, given copies
 * of the sender's and the receiver's records; on MSEG_TCP_ACCEPT the copies
 * hold what to commit and *next the state to move to.
 */
static __always_inline int mseg_tcp_check(struct mseg_tcp_peer *snd,
					  struct mseg_tcp_peer *rcv,
					  const struct mseg_pkt *p, int dir,
					  __u8 state, __u8 *next)
{
	bool snd_seen = snd->flags & MSEG_PEER_SEEN;
	__u32 snd_end = snd->seq_end;
	__u8 cell;
	int cls, r;

	r = mseg_tcp_step(p, rcv, dir, state, &cell, &cls);
	if (r != MSEG_TCP_ACCEPT)
		return r;
	if (!mseg_tcp_window(snd, rcv, p, state))
		return MSEG_TCP_OUT_OF_WINDOW;
	if (cls == MSEG_TC_RST && !mseg_tcp_rst_exact(rcv, p, snd_seen, snd_end))
		return MSEG_TCP_RST_INEXACT;
	mseg_tcp_fins(snd, rcv, p, cls);
	*next = cell == MSEG_TS_KEEP ? state : cell;
	return MSEG_TCP_ACCEPT;
}

/*
 * The common case, both sides seen and no SYN: nothing to set up, so the
 * segment is judged on the session's own records, which it leaves alone;
 * mseg_tcp_commit() then writes what an accepted one shows.
 */
static __always_inline bool mseg_tcp_fast(const struct mseg_tcp_peer *snd,
					  const struct mseg_tcp_peer *rcv,
					  const struct mseg_pkt *p)
{
	return (snd->flags & rcv->flags & MSEG_PEER_SEEN) &&
	       !(p->tcp_flags & MSEG_TCP_SYN);
}

static __always_inline int mseg_tcp_check_fast(const struct mseg_tcp_peer *snd,
					       const struct mseg_tcp_peer *rcv,
					       const struct mseg_pkt *p, int dir,
					       __u8 state, __u8 *next, int *cls)
{
	__u8 cell;
	int r;

	r = mseg_tcp_step(p, rcv, dir, state, &cell, cls);
	if (r != MSEG_TCP_ACCEPT)
		return r;
	if (!mseg_tcp_bounds(snd, rcv, p, mseg_tcp_end(p), mseg_tcp_ack(rcv, p),
			     true))
		return MSEG_TCP_OUT_OF_WINDOW;
	if (*cls == MSEG_TC_RST &&
	    !mseg_tcp_rst_exact(rcv, p, true, snd->seq_end))
		return MSEG_TCP_RST_INEXACT;
	*next = cell == MSEG_TS_KEEP ? state : cell;
	return MSEG_TCP_ACCEPT;
}

static __always_inline void mseg_tcp_commit(struct mseg_tcp_peer *snd,
					    struct mseg_tcp_peer *rcv,
					    const struct mseg_pkt *p, int cls)
{
	mseg_tcp_advance(snd, rcv, p, mseg_tcp_end(p), mseg_tcp_ack(rcv, p));
	mseg_tcp_fins(snd, rcv, p, cls);
}

/*
 * State of a connection first seen with this packet: a SYN opens it; in
 * loose mode a plain ACK picks it up mid-stream (ESTABLISHED, unconfirmed
 * until the other side answers). Anything else, a SYN+ACK included, opens
 * no session: MSEG_TCP_NONE. nf_conntrack never creates an entry from a
 * SYN+ACK either: its receiver would be taken for the originator.
 */
static __always_inline __u8 mseg_tcp_first_state(const struct mseg_pkt *p)
{
	__u8 fl = p->tcp_flags & ~MSEG_TCP_PSH;

	if (fl == MSEG_TCP_SYN)
		return MSEG_TCP_SYN_SENT;
	if (fl == MSEG_TCP_ACK)
		return MSEG_TCP_ESTABLISHED;
	return MSEG_TCP_NONE;
}

/*
 * The records of a session this packet opens, sent by side `dir`: run it
 * through the window tracker on empty records (a pickup first assumes the
 * largest window scales).
 */
static __always_inline void mseg_tcp_open(struct mseg_session *s, int dir,
					  const struct mseg_pkt *p, __u8 state)
{
	struct mseg_tcp_peer *snd = &s->tcp[dir & 1];
	struct mseg_tcp_peer *rcv = &s->tcp[!(dir & 1)];

	if (state != MSEG_TCP_SYN_SENT)
		mseg_tcp_pickup(snd, rcv);
	mseg_tcp_window(snd, rcv, p, state);
}

#endif /* MSEG_TCP_H */
