// SPDX-License-Identifier: GPL-2.0
/*
 * Notifications: each change point detection raises is POSTed, as a JSON
 * summary, to webhook_url.  The summary is queued in the notifications
 * table in the transaction that raises the change point, so nothing is
 * lost to a crash or a listener that is down; one thread sends the queue
 * in order, each at most once successfully, and retries a failure after
 * 2, 4, 8 ... seconds (at most webhook_max_delay).
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "regressd.h"

static pthread_t notifier;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static bool stopping, started;

/* host, port and path of an http://host[:port][/path] URL. */
int webhook_parse(const char *url, struct webhook *w)
{
	const char *h, *slash, *colon;
	size_t hl;

	memset(w, 0, sizeof(*w));
	if (strncmp(url, "http://", 7))
		return -EINVAL;
	h = url + 7;
	slash = strchr(h, '/');
	hl = slash ? (size_t)(slash - h) : strlen(h);
	colon = memchr(h, ':', hl);
	if (!hl || colon == h || hl >= sizeof(w->host))
		return -EINVAL;
	snprintf(w->host, sizeof(w->host), "%.*s", (int)(colon ? colon - h : (long)hl), h);
	if (colon) {
		char *end;
		unsigned long p = strtoul(colon + 1, &end, 10);

		if (end != h + hl || colon + 1 == end || !p || p > 65535)
			return -EINVAL;
		snprintf(w->port, sizeof(w->port), "%lu", p);
	} else {
		snprintf(w->port, sizeof(w->port), "80");
	}
	snprintf(w->path, sizeof(w->path), "%s", slash ? slash : "/");
	if (strlen(slash ? slash : "/") >= sizeof(w->path) || strpbrk(w->path, " \r\n") ||
	    strpbrk(w->host, " \r\n/@?#"))
		return -EINVAL;
	return 0;
}

/* POST body to the webhook: 0 on a 2xx answer, else -errno and why. */
static int post(const struct webhook *w, const char *body, char *why, size_t whylen)
{
	struct timeval tv = { 10, 0 };
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai, *a;
	char head[1536 + sizeof(w->path) + sizeof(w->host)], answer[64];
	size_t got = 0;
	int fd = -1, ret, status;
	ssize_t n;

	ret = getaddrinfo(w->host, w->port, &hints, &ai);
	if (ret) {
		snprintf(why, whylen, "%.200s: %.100s", w->host, gai_strerror(ret));
		return -EHOSTUNREACH;
	}
	for (a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (!connect(fd, a->ai_addr, a->ai_addrlen))
			break;
		ret = -errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		snprintf(why, whylen, "connect %.200s:%.7s: %.100s", w->host, w->port,
			 strerror(-ret));
		return ret ? ret : -ECONNREFUSED;
	}
	snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: %s:%s\r\n"
		 "User-Agent: kmmu-regressd\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n", w->path, w->host, w->port,
		 strlen(body));
	if (send(fd, head, strlen(head), MSG_NOSIGNAL) != (ssize_t)strlen(head) ||
	    send(fd, body, strlen(body), MSG_NOSIGNAL) != (ssize_t)strlen(body)) {
		ret = errno ? -errno : -EIO;
		snprintf(why, whylen, "send: %s", strerror(-ret));
		close(fd);
		return ret;
	}
	while (got < sizeof(answer) - 1 &&
	       (n = recv(fd, answer + got, sizeof(answer) - 1 - got, 0)) > 0)
		got += n;
	close(fd);
	answer[got] = 0;
	if (sscanf(answer, "HTTP/1.%*1[01] %3d", &status) != 1) {
		snprintf(why, whylen, "no HTTP answer");
		return -EPROTO;
	}
	if (status < 200 || status > 299) {
		snprintf(why, whylen, "HTTP %d", status);
		return -EREMOTEIO;
	}
	return 0;
}

/* Send what is due; 0, or -errno when the database could not be used. */
static int send_due(const struct webhook *w)
{
	PGresult *res;
	PGconn *c;
	int ret;

	c = db_get();
	if (!c)
		return -ENOTCONN;
	/* An alert's body is made now: it holds what joined it since it was raised. */
	ret = db_exec(c, &res, "SELECT id, coalesce(body, alert_json(alert_id, $1, $2))::text,"
		      " attempts FROM notifications WHERE delivered IS NULL AND next_try <= now()"
		      " ORDER BY id LIMIT 20", 2,
		      (const char *[]){ conf->commit_url, conf->range_url });
	for (int i = 0; !ret && i < PQntuples(res); i++) {
		const char *id = PQgetvalue(res, i, 0);
		unsigned int attempts = atoi(PQgetvalue(res, i, 2)) + 1;
		char why[512] = "", delay[24];
		const char *p[3] = { id, why, delay };

		if (!post(w, PQgetvalue(res, i, 1), why, sizeof(why))) {
			ret = db_cmd(c, "UPDATE notifications SET delivered = now(),"
				     " attempts = attempts + 1, last_error = NULL WHERE id = $1",
				     1, p);
			if (!ret)
				log_info("notification %s sent to %s", id, conf->webhook_url);
			continue;
		}
		snprintf(delay, sizeof(delay), "%u",
			 attempts >= 20 ? conf->webhook_max_delay :
			 (1u << attempts) < conf->webhook_max_delay ? 1u << attempts :
			 conf->webhook_max_delay);
		log_warn("notification %s: %s; attempt %u, next in %s s", id, why, attempts,
			 delay);
		ret = db_cmd(c, "UPDATE notifications SET attempts = attempts + 1,"
			     " last_error = $2, next_try = now() + $3 * interval '1 second'"
			     " WHERE id = $1", 3, p);
		/* The listener is down: the rest waits for the next round. */
		break;
	}
	PQclear(res);
	db_put(c);
	return ret;
}

static void *notify_main(void *arg)
{
	const struct webhook *w = arg;

	pthread_mutex_lock(&lock);
	while (!stopping) {
		struct timespec ts;

		pthread_mutex_unlock(&lock);
		send_due(w);
		pthread_mutex_lock(&lock);
		if (stopping)
			break;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&wake, &lock, &ts);
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

static struct webhook hook;

int notify_start(void)
{
	int ret;

	if (!*conf->webhook_url)
		return 0;
	if (webhook_parse(conf->webhook_url, &hook))
		return -EINVAL;
	ret = pthread_create(&notifier, NULL, notify_main, &hook);
	if (ret) {
		log_err("notifications: %s", strerror(ret));
		return -ret;
	}
	started = true;
	return 0;
}

/* Detection raised something: look at the queue now, not in a second. */
void notify_kick(void)
{
	pthread_mutex_lock(&lock);
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
}

void notify_stop(void)
{
	if (!started)
		return;
	pthread_mutex_lock(&lock);
	stopping = true;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&lock);
	pthread_join(notifier, NULL);
	started = false;
}
