/* udpflood: a bounded UDP sendto() loop for txtop's overhead benchmark.
 *
 * usage: udpflood DST_IPV4 PORT PAYLOAD_BYTES MAX_PACKETS MAX_SECONDS
 *
 * Sends at most MAX_PACKETS datagrams and stops after MAX_SECONDS, whichever comes first,
 * then prints "<sent> <seconds>" on stdout (sent = sendto() calls that succeeded). Refuses any destination outside loopback
 * (127.0.0.0/8) and the txtop lab range (10.253.0.0/16): it must never leave the machine.
 * Built at run time by bench/traffic.py (build_flooder) into a private temporary directory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long parse_long(const char *s, long lo, long hi, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < lo || v > hi) {
		fprintf(stderr, "udpflood: bad %s %s (want %ld..%ld)\n", what, s, lo, hi);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	struct sockaddr_in dst = { .sin_family = AF_INET };
	char payload[1472] = { 0 };
	long port, size, max_packets, max_s, tries = 0, sent = 0;
	double start, stop, end;
	uint32_t host;
	int fd;

	if (argc != 6) {
		fprintf(stderr, "usage: udpflood DST_IPV4 PORT PAYLOAD_BYTES MAX_PACKETS MAX_SECONDS\n");
		return 2;
	}
	if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
		fprintf(stderr, "udpflood: bad IPv4 address %s\n", argv[1]);
		return 2;
	}
	host = ntohl(dst.sin_addr.s_addr);
	if ((host >> 24) != 127 && (host >> 16) != ((10u << 8) | 253u)) {
		fprintf(stderr, "udpflood: refusing %s: only 127/8 and the lab range 10.253/16\n",
			argv[1]);
		return 2;
	}
	port = parse_long(argv[2], 1, 65535, "port");
	size = parse_long(argv[3], 0, (long)sizeof(payload), "payload size");
	max_packets = parse_long(argv[4], 1, 1000000000L, "packet count");
	max_s = parse_long(argv[5], 1, 600, "duration");
	dst.sin_port = htons((uint16_t)port);

	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0) {
		perror("udpflood: socket");
		return 1;
	}
	start = now_s();
	end = start + max_s;
	while (tries < max_packets) {
		tries++;
		if (sendto(fd, payload, size, 0, (struct sockaddr *)&dst, sizeof(dst)) >= 0)
			sent++;
		else if (errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED) {
			perror("udpflood: sendto");
			break;
		}
		/* checking the clock every 1024 packets keeps the loop tight */
		if ((tries & 1023) == 0 && now_s() >= end)
			break;
	}
	stop = now_s();
	close(fd);
	printf("%ld %.6f\n", sent, stop - start);
	return 0;
}
