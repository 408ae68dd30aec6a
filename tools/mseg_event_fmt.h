/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * One event of the data path (struct mseg_event) as the JSON line the event
 * log stores (docs/json.md): written by the drainer, printed as it is by
 * `mseg log --json`, and turned into text by `mseg log`. Every value is a
 * number, a boolean, null or a string of the fixed vocabularies below or an
 * address, so no string ever needs escaping.
 */
#ifndef MSEG_EVENT_FMT_H
#define MSEG_EVENT_FMT_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <linux/types.h>

#include "mseg_abi.h"
#include "mseg_addr.h"

#define MSEG_EVENT_LINE_MAX 512

static inline const char *mseg_event_kind_name(__u8 kind)
{
	switch (kind) {
	case MSEG_EV_DENY:
		return "deny";
	case MSEG_EV_LOG:
		return "log";
	case MSEG_EV_DROP:
		return "drop";
	case MSEG_EV_PRESSURE:
		return "pressure";
	case MSEG_EV_FLOOD:
		return "flood";
	case MSEG_EV_EVICT:
		return "evict";
	case MSEG_EV_AUDIT:
		return "would-deny";
	}
	return "unknown";
}

static inline const char *mseg_event_reason_name(__u8 reason)
{
	static const char *const names[] = {
		[MSEG_RSN_EXACT] = "exact-rule",
		[MSEG_RSN_CIDR] = "cidr-rule",
		[MSEG_RSN_DEFAULT] = "default-action",
		[MSEG_RSN_DEGRADED] = "table-degraded",
		[MSEG_RSN_FULL] = "table-full",
		[MSEG_RSN_WARN] = "pressure-warning",
		[MSEG_RSN_CRIT] = "pressure-critical",
		[MSEG_RSN_DEGRADE] = "pressure-degraded",
		[MSEG_RSN_SYN_RATE] = "syn-rate",
		[MSEG_RSN_HALF_OPEN] = "half-open",
		[MSEG_RSN_UNREPLIED] = "unreplied",
		[MSEG_RSN_CLOSED] = "closed",
		[MSEG_RSN_EXPIRED] = "expired",
	};

	if (reason < sizeof(names) / sizeof(names[0]) && names[reason])
		return names[reason];
	return "unknown";
}

static inline const char *mseg_event_action_name(__u8 action)
{
	switch (action) {
	case MSEG_ACT_ALLOW:
		return "allow";
	case MSEG_ACT_DENY:
		return "deny";
	case MSEG_ACT_LOG:
		return "log";
	case MSEG_ACT_AUDIT:
		return "would-deny";
	}
	return "unknown";
}

static inline const char *mseg_event_proto_name(__u8 proto, char *buf,
						size_t len)
{
	switch (proto) {
	case 6:
		return "tcp";
	case 17:
		return "udp";
	case 1:
		return "icmp";
	case 58:
		return "icmpv6";
	}
	snprintf(buf, len, "%u", proto);
	return buf;
}

/* Wall-clock nanoseconds as RFC 3339 UTC with microseconds. */
static inline void mseg_event_time(long long real_ns, char *buf, size_t len)
{
	time_t sec = real_ns / 1000000000LL;
	struct tm tm;
	char day[32];

	gmtime_r(&sec, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%06lldZ", day, (real_ns % 1000000000LL) / 1000);
}

static inline bool mseg_event_has_flow(const struct mseg_event *e)
{
	return e->kind == MSEG_EV_DENY || e->kind == MSEG_EV_LOG ||
	       e->kind == MSEG_EV_AUDIT || e->kind == MSEG_EV_DROP ||
	       e->kind == MSEG_EV_EVICT;
}

/*
 * The JSON line of event e (with its newline) into buf; returns its length.
 * "rule" is the id of the rule that decided a deny, log or would-deny event (the data
 * path puts it in value), "default" for the default action, null for the
 * other kinds.
 */
static inline int mseg_event_json(const struct mseg_event *e,
				  long long boot_to_real_ns, char *buf,
				  size_t len)
{
	char when[64], src[MSEG_ADDR_STRLEN], dst[MSEG_ADDR_STRLEN], pbuf[8];
	int n;

	mseg_event_time((long long)e->ts_ns + boot_to_real_ns, when,
			sizeof(when));
	n = snprintf(buf, len,
		     "{\"time\":\"%s\",\"ts_ns\":%llu,\"event\":\"%s\","
		     "\"action\":\"%s\",\"reason\":\"%s\",\"rule\":",
		     when, (unsigned long long)e->ts_ns,
		     mseg_event_kind_name(e->kind),
		     mseg_event_action_name(e->action),
		     mseg_event_reason_name(e->reason));
	if (e->kind != MSEG_EV_DENY && e->kind != MSEG_EV_LOG && e->kind != MSEG_EV_AUDIT)
		n += snprintf(buf + n, len - (size_t)n, "null");
	else if (e->value)
		n += snprintf(buf + n, len - (size_t)n, "%u", e->value);
	else
		n += snprintf(buf + n, len - (size_t)n, "\"default\"");
	if (mseg_event_has_flow(e)) {
		mseg_addr_format(e->src, src);
		mseg_addr_format(e->dst, dst);
		n += snprintf(buf + n, len - (size_t)n,
			      ",\"proto\":\"%s\",\"src\":\"%s\",\"sport\":%u,"
			      "\"dst\":\"%s\",\"dport\":%u,\"rejudged\":%s",
			      mseg_event_proto_name(e->proto, pbuf, sizeof(pbuf)),
			      src, e->sport, dst, e->dport,
			      (e->flags & MSEG_EVF_REJUDGED) ? "true" : "false");
	}
	/* an early drop (evict) carries the evicted session's idle seconds;
	 * deny and log events carry their rule's id in value, shown as "rule" */
	if (e->kind == MSEG_EV_EVICT)
		n += snprintf(buf + n, len - (size_t)n, ",\"idle_s\":%u",
			      e->value);
	else if (!mseg_event_has_flow(e))
		n += snprintf(buf + n, len - (size_t)n, ",\"value\":%u",
			      e->value);
	n += snprintf(buf + n, len - (size_t)n, ",\"suppressed\":%u}\n",
		      e->suppressed);
	return n;
}

/* The line that records events lost before they reached the log. */
static inline int mseg_event_lost_json(long long real_ns, __u64 lost,
				       const char *where, char *buf, size_t len)
{
	char when[64];

	mseg_event_time(real_ns, when, sizeof(when));
	return snprintf(buf, len,
			"{\"time\":\"%s\",\"event\":\"lost\",\"lost\":%llu,"
			"\"where\":\"%s\"}\n",
			when, (unsigned long long)lost, where);
}

#endif /* MSEG_EVENT_FMT_H */
