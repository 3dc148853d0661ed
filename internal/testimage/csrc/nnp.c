/* nnp: installed setuid root in the nonewprivs test image. Prints the
 * effective uid it runs with: 0 when the setuid bit took effect, the caller's
 * uid when no_new_privs stopped it. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
	printf("Effective uid: %d\n", (int)geteuid());
	return 0;
}
