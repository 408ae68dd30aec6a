/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A big output buffer and number formatting without printf, for the tools
 * that print a million lines (`mseg sessions`): a write error (a full disk,
 * a closed pipe) is reported once, at the end, as "mseg: ...".
 */
#ifndef MSEG_OUT_H
#define MSEG_OUT_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>

#define MSEG_OUT_BUF (1 << 20)

struct mseg_out {
	FILE *f;
	char *buf;
	size_t len;
	int err; /* the first write error's errno */
};

static inline int mseg_out_init(struct mseg_out *o, FILE *f)
{
	o->f = f;
	o->len = 0;
	o->err = 0;
	o->buf = malloc(MSEG_OUT_BUF);
	if (!o->buf) {
		fprintf(stderr, "mseg: out of memory\n");
		return -1;
	}
	return 0;
}

static inline void mseg_out_flush(struct mseg_out *o)
{
	if (o->len && !o->err && fwrite(o->buf, 1, o->len, o->f) != o->len)
		o->err = errno ? errno : EIO;
	o->len = 0;
}

static inline void mseg_out_mem(struct mseg_out *o, const char *s, size_t n)
{
	if (o->len + n > MSEG_OUT_BUF)
		mseg_out_flush(o);
	if (n > MSEG_OUT_BUF) {
		if (!o->err && fwrite(s, 1, n, o->f) != n)
			o->err = errno ? errno : EIO;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

/* Room for n bytes at the end of the buffer; mseg_out_commit says how many were used. */
static inline char *mseg_out_reserve(struct mseg_out *o, size_t n)
{
	if (o->len + n > MSEG_OUT_BUF)
		mseg_out_flush(o);
	return o->buf + o->len;
}

static inline void mseg_out_commit(struct mseg_out *o, size_t n)
{
	o->len += n;
}

static inline void mseg_out_str(struct mseg_out *o, const char *s)
{
	mseg_out_mem(o, s, strlen(s));
}

static inline void mseg_out_chr(struct mseg_out *o, char c)
{
	mseg_out_mem(o, &c, 1);
}

static inline void mseg_out_pad(struct mseg_out *o, size_t n)
{
	static const char spaces[64] = "                                                               ";

	while (n) {
		size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;

		mseg_out_mem(o, spaces, k);
		n -= k;
	}
}

/* Flush, close the buffer; -1 after "mseg: ..." if any write failed. */
static inline int mseg_out_close(struct mseg_out *o)
{
	mseg_out_flush(o);
	if (!o->err && fflush(o->f))
		o->err = errno ? errno : EIO;
	free(o->buf);
	o->buf = NULL;
	if (o->err) {
		fprintf(stderr, "mseg: cannot write the output: %s\n",
			strerror(o->err));
		return -1;
	}
	return 0;
}

/* Decimal text of v into buf (at least 21 bytes); returns its length. */
static inline size_t mseg_fmt_u64(char *buf, __u64 v)
{
	char tmp[24];
	size_t n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	buf[n] = '\0';
	return n;
}

/* A count of tenths as "12.3" (at least 23 bytes). */
static inline size_t mseg_fmt_tenths(char *buf, __u64 tenths)
{
	size_t n = mseg_fmt_u64(buf, tenths / 10);

	buf[n++] = '.';
	buf[n++] = (char)('0' + tenths % 10);
	buf[n] = '\0';
	return n;
}

#endif /* MSEG_OUT_H */
