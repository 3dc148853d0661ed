/* ipcs: minimal static replacement for the test images.
 * Reads /proc/sysvipc/{msg,shm,sem} of the caller's IPC namespace and prints
 * them in the layout util-linux ipcs uses. Options: -m (shared memory),
 * -q (message queues), -s (semaphores), -a (all, the default). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* owner looks a uid up in /etc/passwd without NSS (this is a static binary). */
static void owner(unsigned long uid, char *out, size_t len) {
	snprintf(out, len, "%lu", uid);
	FILE *f = fopen("/etc/passwd", "r");
	if (f == NULL)
		return;
	char line[1024];
	while (fgets(line, sizeof line, f) != NULL) {
		char *name = strtok(line, ":");
		if (name == NULL || strtok(NULL, ":") == NULL)
			continue;
		char *id = strtok(NULL, ":");
		if (id != NULL && strtoul(id, NULL, 10) == uid) {
			snprintf(out, len, "%s", name);
			break;
		}
	}
	fclose(f);
}

/* table prints the entries of one /proc/sysvipc file; kind selects the
 * layout ('m' shared memory, 'q' message queues, 's' semaphores). */
static void table(const char *title, const char *file, const char *header, int kind) {
	printf("\n------ %s --------\n%s\n", title, header);
	FILE *f = fopen(file, "r");
	if (f == NULL)
		return;
	char line[1024];
	if (fgets(line, sizeof line, f) == NULL) { /* column names */
		fclose(f);
		return;
	}
	while (fgets(line, sizeof line, f) != NULL) {
		unsigned long v[20] = {0};
		int n = 0;
		char *save = NULL;
		for (char *tok = strtok_r(line, " \t\n", &save); tok != NULL && n < 20;
		     tok = strtok_r(NULL, " \t\n", &save))
			v[n++] = strtoul(tok, NULL, 10);
		char who[64];
		switch (kind) {
		case 'm': /* key shmid perms size cpid lpid nattch uid gid ... */
			if (n < 9)
				continue;
			owner(v[7], who, sizeof who);
			printf("0x%08lx %-10lu %-10s %-10lo %-10lu %-10lu %-12s\n", v[0] & 0xffffffffUL,
			       v[1], who, v[2] & 0777, v[3], v[6], (v[2] & 01000) ? "dest" : "");
			break;
		case 'q': /* key msqid perms cbytes qnum lspid lrpid uid gid ... */
			if (n < 9)
				continue;
			owner(v[7], who, sizeof who);
			printf("0x%08lx %-10lu %-10s %-10lo %-12lu %-12lu\n", v[0] & 0xffffffffUL, v[1], who,
			       v[2] & 0777, v[3], v[4]);
			break;
		case 's': /* key semid perms nsems uid gid ... */
			if (n < 6)
				continue;
			owner(v[4], who, sizeof who);
			printf("0x%08lx %-10lu %-10s %-10lo %-10lu\n", v[0] & 0xffffffffUL, v[1], who, v[2] & 0777,
			       v[3]);
			break;
		}
	}
	fclose(f);
}

int main(int argc, char **argv) {
	int m = 0, q = 0, s = 0, opt;
	while ((opt = getopt(argc, argv, "mqsa")) != -1) {
		switch (opt) {
		case 'm': m = 1; break;
		case 'q': q = 1; break;
		case 's': s = 1; break;
		case 'a': m = q = s = 1; break;
		default:
			fprintf(stderr, "usage: ipcs [-mqsa]\n");
			return 1;
		}
	}
	if (!m && !q && !s)
		m = q = s = 1;
	if (q)
		table("Message Queues", "/proc/sysvipc/msg",
		      "key        msqid      owner      perms      used-bytes   messages    ", 'q');
	if (m)
		table("Shared Memory Segments", "/proc/sysvipc/shm",
		      "key        shmid      owner      perms      bytes      nattch     status      ", 'm');
	if (s)
		table("Semaphore Arrays", "/proc/sysvipc/sem",
		      "key        semid      owner      perms      nsems     ", 's');
	printf("\n");
	return 0;
}
