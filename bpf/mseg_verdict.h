/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A policy decision: what the rules say of a flow, and which rule said it. */
#ifndef MSEG_VERDICT_H
#define MSEG_VERDICT_H

#include <linux/types.h>

struct mseg_verdict {
	__u32 rule_id; /* 0: the default action */
	__u8 action;   /* enum mseg_action */
	__u8 by;       /* enum mseg_decided_by (mseg_abi.h) */
};

#endif /* MSEG_VERDICT_H */
