/* pgrep: minimal static replacement for the test images.
 * Usage: pgrep [-f] [-x] [-l] [-n|-o] PATTERN
 * Matches PATTERN (POSIX extended regex) against each process name
 * (/proc/PID/comm), or with -f against the full command line
 * (/proc/PID/cmdline, NULs shown as spaces). Prints matching PIDs, one a
 * line; exits 0 if something matched, 1 if nothing did, 2 on usage errors. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t slurp(const char *path, char *buf, size_t len) {
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	size_t n = 0;
	while (n < len - 1) {
		ssize_t r = read(fd, buf + n, len - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	return n;
}

int main(int argc, char **argv) {
	int full = 0, exact = 0, list = 0, newest = 0, oldest = 0, opt;
	while ((opt = getopt(argc, argv, "fxlno")) != -1) {
		switch (opt) {
		case 'f': full = 1; break;
		case 'x': exact = 1; break;
		case 'l': list = 1; break;
		case 'n': newest = 1; break;
		case 'o': oldest = 1; break;
		default:
			fprintf(stderr, "usage: pgrep [-fxlno] PATTERN\n");
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: pgrep [-fxlno] PATTERN\n");
		return 2;
	}
	char pattern[4096];
	if (exact)
		snprintf(pattern, sizeof pattern, "^(%s)$", argv[optind]);
	else
		snprintf(pattern, sizeof pattern, "%s", argv[optind]);
	regex_t re;
	if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0) {
		fprintf(stderr, "pgrep: invalid pattern\n");
		return 2;
	}
	DIR *d = opendir("/proc");
	if (d == NULL) {
		perror("pgrep: /proc");
		return 3;
	}
	long self = (long)getpid(), pick = -1;
	char pickname[4096] = "";
	int found = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		long pid = strtol(e->d_name, NULL, 10);
		if (pid == self)
			continue;
		char path[64], text[4096];
		size_t n;
		if (full) {
			snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
			n = slurp(path, text, sizeof text);
			while (n > 0 && text[n - 1] == '\0')
				n--;
			for (size_t i = 0; i < n; i++)
				if (text[i] == '\0')
					text[i] = ' ';
			text[n] = '\0';
		}
		if (!full || text[0] == '\0') {
			snprintf(path, sizeof path, "/proc/%ld/comm", pid);
			n = slurp(path, text, sizeof text);
			if (n > 0 && text[n - 1] == '\n')
				text[n - 1] = '\0';
		}
		if (text[0] == '\0' || regexec(&re, text, 0, NULL, 0) != 0)
			continue;
		found = 1;
		if (newest || oldest) {
			if (pick < 0 || (newest && pid > pick) || (oldest && pid < pick)) {
				pick = pid;
				snprintf(pickname, sizeof pickname, "%s", text);
			}
			continue;
		}
		if (list)
			printf("%ld %s\n", pid, text);
		else
			printf("%ld\n", pid);
	}
	closedir(d);
	if (pick >= 0) {
		if (list)
			printf("%ld %s\n", pick, pickname);
		else
			printf("%ld\n", pick);
	}
	regfree(&re);
	return found ? 0 : 1;
}
