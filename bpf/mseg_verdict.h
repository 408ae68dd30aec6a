/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A policy decision: what the rules say of a flow, and which rule kind said it. */
#ifndef MSEG_VERDICT_H
#define MSEG_VERDICT_H

#include <linux/types.h>

enum mseg_decided_by {
	MSEG_BY_EXACT,
	MSEG_BY_CIDR,
	MSEG_BY_DEFAULT,
};

struct mseg_verdict {
	__u8 action; /* enum mseg_action */
	__u8 by;     /* enum mseg_decided_by */
};

#endif /* MSEG_VERDICT_H */
