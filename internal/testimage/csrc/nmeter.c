/* nmeter: the one use the node e2e suite makes of busybox's nmeter applet (Debian's busybox has none):
 * `nmeter -d0 '%3t'` prints the wall-clock time of day in UTC with milliseconds, HH:MM:SS.mmm, one line
 * after another until its output is closed (the suite reads one line with head -n1). The arguments are
 * accepted and ignored. */
#include <stdio.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int main(void) {
	for (;;) {
		struct timeval tv;
		struct tm tm;
		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		if (printf("%02d:%02d:%02d.%03ld\n", tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000)) < 0 ||
		    fflush(stdout) != 0)
			return 0;
		usleep(100000);
	}
}
