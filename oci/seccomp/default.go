package seccomp

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Design of noded's RuntimeDefault profile
//
// Everything not listed fails with EPERM. Syscall names unknown on the native architecture are skipped by the
// OCI runtime, so one list serves x86_64/x86/x32 and aarch64/arm; syscalls newer than the runtime's libseccomp
// get ENOSYS from runc, which lets libc fall back.
//
// Always allowed: what ordinary processes use (files, memory, signals, time reading, sockets, IPC, process and
// thread management, credentials within the container's capabilities, namespaced UTS calls, ptrace of own
// descendants — safe since Linux 4.8 where seccomp is re-checked after a tracer changes a syscall).
//
// Allowed only when the container holds the corresponding capability (an explicit add by the pod author):
// CAP_SYS_ADMIN: mount API, unshare/setns, clone/clone3 with namespace flags, pivot_root, quotactl,
// fanotify_init; CAP_SYS_CHROOT: chroot; CAP_SYS_BOOT: reboot, kexec; CAP_SYS_MODULE: module loading;
// CAP_SYS_PACCT: acct; CAP_SYS_TIME: setting clocks; CAP_SYS_PTRACE: cross-process memory access, kcmp,
// pidfd_getfd; CAP_SYS_NICE: NUMA memory policy; CAP_SYS_RAWIO: iopl/ioperm; CAP_SYSLOG: syslog;
// CAP_SYS_TTY_CONFIG: vhangup; CAP_DAC_READ_SEARCH: open_by_handle_at; CAP_BPF or CAP_SYS_ADMIN: bpf;
// CAP_PERFMON or CAP_SYS_ADMIN: perf_event_open.
//
// Never allowed: the kernel keyring (keyctl, add_key, request_key — not namespaced), swapon/swapoff,
// userfaultfd, io_uring (a large attack surface bypassing seccomp for its operations), name_to_handle_at,
// modify_ldt, obsolete calls (uselib, ustat, sysfs, _sysctl, nfsservctl, vm86, lookup_dcookie),
// personality with anything but the standard/32-bit/uname26 personas.

// basicSyscalls are allowed unconditionally.
var basicSyscalls = []string{
	// files and directories
	"access", "chdir", "chmod", "chown", "chown32", "close", "close_range", "copy_file_range", "creat", "dup",
	"dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fchdir", "fchmod",
	"fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "flock", "fstat",
	"fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futimesat", "getcwd",
	"getdents", "getdents64", "lchown", "lchown32", "link", "linkat", "_llseek", "lseek", "lstat", "lstat64",
	"mkdir", "mkdirat", "mknod", "mknodat", "newfstatat", "open", "openat", "openat2", "pread64", "preadv",
	"preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv",
	"rename", "renameat", "renameat2", "rmdir", "sendfile", "sendfile64", "splice", "stat", "stat64", "statfs",
	"statfs64", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "tee", "truncate",
	"truncate64", "umask", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vmsplice",
	"write", "writev", "cachestat", "statmount", "listmount",
	// extended attributes
	"fgetxattr", "flistxattr", "fremovexattr", "fsetxattr", "getxattr", "getxattrat", "lgetxattr", "listxattr",
	"listxattrat", "llistxattr", "lremovexattr", "lsetxattr", "removexattr", "removexattrat", "setxattr",
	"setxattrat",
	// file event notification and polling
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait",
	"epoll_wait_old", "eventfd", "eventfd2", "fanotify_mark", "inotify_add_watch", "inotify_init",
	"inotify_init1", "inotify_rm_watch", "poll", "ppoll", "ppoll_time64", "pselect6", "pselect6_time64",
	"select", "_newselect", "signalfd", "signalfd4", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
	"timerfd_settime", "timerfd_settime64",
	// asynchronous I/O (not io_uring)
	"io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "io_setup", "io_submit",
	"ioctl", "ioprio_get", "ioprio_set",
	// memory
	"brk", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore", "mlock",
	"mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mremap", "mseal", "msync", "munlock", "munlockall",
	"munmap", "pkey_alloc", "pkey_free", "pkey_mprotect", "remap_file_pages", "process_mrelease",
	// processes, threads and scheduling
	"arch_prctl", "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "futex",
	"futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake", "getcpu", "getpgid", "getpgrp",
	"getpid", "getppid", "getpriority", "getrlimit", "get_robust_list", "getrusage", "getsid",
	"get_thread_area", "gettid", "prctl", "prlimit64", "ptrace", "restart_syscall", "rseq",
	"sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
	"sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
	"sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "setpgid", "setpriority",
	"setrlimit", "set_robust_list", "setsid", "set_thread_area", "set_tid_address", "ugetrlimit", "vfork",
	"wait4", "waitid", "waitpid", "pidfd_open", "pidfd_send_signal", "landlock_add_rule",
	"landlock_create_ruleset", "landlock_restrict_self", "uname", "sysinfo", "sethostname", "setdomainname",
	// credentials (effective only within the container's capabilities)
	"getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32",
	"getresgid", "getresgid32", "getresuid", "getresuid32", "getuid", "getuid32", "setfsgid", "setfsgid32",
	"setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setregid", "setregid32",
	"setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setuid", "setuid32",
	// signals
	"alarm", "kill", "pause", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
	"rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
	"sigaltstack", "sigprocmask", "sigreturn", "tgkill", "tkill",
	// time (reading, sleeping, timers)
	"adjtimex", "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
	"clock_nanosleep_time64", "getitimer", "gettimeofday", "nanosleep", "setitimer", "time", "timer_create",
	"timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
	"times", "getrandom",
	// networking
	"accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt", "listen", "recv",
	"recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send", "sendmmsg", "sendmsg", "sendto", "setsockopt",
	"shutdown", "socketcall", "socketpair", // socket: see socketRules
	// System V and POSIX IPC (IPC namespace)
	"ipc", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
	"mq_timedsend_time64", "mq_unlink", "msgctl", "msgget", "msgrcv", "msgsnd", "semctl", "semget", "semop",
	"semtimedop", "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget",
	// pipes
	"pipe", "pipe2",
	// 32-bit arm specifics
	"arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush", "set_tls",
}

// capSyscalls are allowed when the container holds the capability.
var capSyscalls = []struct {
	cap   string
	names []string
}{
	{"CAP_SYS_ADMIN", []string{
		"bpf", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "mount", "mount_setattr", "move_mount",
		"open_tree", "open_tree_attr", "perf_event_open", "pivot_root", "quotactl", "quotactl_fd", "setns",
		"umount", "umount2", "unshare", "clone", "clone3",
	}},
	{"CAP_BPF", []string{"bpf"}},
	{"CAP_PERFMON", []string{"perf_event_open"}},
	{"CAP_SYS_CHROOT", []string{"chroot"}},
	{"CAP_SYS_BOOT", []string{"reboot", "kexec_load", "kexec_file_load"}},
	{"CAP_SYS_MODULE", []string{"init_module", "finit_module", "delete_module"}},
	{"CAP_SYS_PACCT", []string{"acct"}},
	{"CAP_SYS_TIME", []string{"settimeofday", "stime", "clock_settime", "clock_settime64", "clock_adjtime", "clock_adjtime64"}},
	{"CAP_SYS_PTRACE", []string{"process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"}},
	{"CAP_SYS_NICE", []string{"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node", "migrate_pages", "move_pages"}},
	{"CAP_SYS_RAWIO", []string{"iopl", "ioperm"}},
	{"CAP_SYSLOG", []string{"syslog"}},
	{"CAP_SYS_TTY_CONFIG", []string{"vhangup"}},
	{"CAP_DAC_READ_SEARCH", []string{"open_by_handle_at"}},
}

// cloneNamespaceFlags are the clone flags creating namespaces.
const cloneNamespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
	unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME

// Address families socket(2) may not create: AF_ALG (38, the kernel crypto API, a recurring source of kernel
// bugs) and AF_VSOCK (40, reaches the hypervisor and other VMs), as moby and containerd block them. socketcall
// (32-bit) passes its arguments in memory and cannot be filtered.
const (
	afALG   = 38
	afVSOCK = 40
	afMax   = 46 // AF_MAX of Linux 6.x (AF_MCTP is 45)
)

// socketRules allow socket(2) for the known families but afALG and afVSOCK. The filter sees the whole 64-bit
// register while the kernel uses its low 32 bits, so only exact values are allowed: below afALG (a value with
// high bits set is not below it), afALG+1, and each family from afVSOCK+1 to afMax-1. A family newer than afMax
// gets EPERM instead of EAFNOSUPPORT until it is added here.
func socketRules() []Syscall {
	rule := func(op specs.LinuxSeccompOperator, v uint64) Syscall {
		return Syscall{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: v, Op: op}}}
	}
	out := []Syscall{rule(specs.OpLessThan, afALG), rule(specs.OpEqualTo, afALG+1)}
	for f := uint64(afVSOCK + 1); f < afMax; f++ {
		out = append(out, rule(specs.OpEqualTo, f))
	}
	return out
}

// allowedPersonas are the personality(2) arguments allowed: query (0xffffffff), PER_LINUX, PER_LINUX32,
// UNAME26 and UNAME26|PER_LINUX32.
var allowedPersonas = []uint64{0x0, 0x8, 0x20000, 0x20008, 0xffffffff}

// DefaultProfile returns a new copy of noded's RuntimeDefault profile.
func DefaultProfile() *Profile {
	eperm := uint(unix.EPERM)
	enosys := uint(unix.ENOSYS)
	p := &Profile{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: &eperm,
		ArchMap: []ArchMapEntry{
			{Arch: specs.ArchX86_64, SubArchitectures: []specs.Arch{specs.ArchX86, specs.ArchX32}},
			{Arch: specs.ArchAARCH64, SubArchitectures: []specs.Arch{specs.ArchARM}},
		},
		Syscalls: []Syscall{{Names: append([]string(nil), basicSyscalls...), Action: specs.ActAllow}},
	}
	p.Syscalls = append(p.Syscalls, socketRules()...)
	for _, per := range allowedPersonas {
		p.Syscalls = append(p.Syscalls, Syscall{
			Names: []string{"personality"}, Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: per, Op: specs.OpEqualTo}},
		})
	}
	// Without CAP_SYS_ADMIN, clone may not create namespaces, and clone3 (whose flags live in memory and cannot
	// be inspected) reports ENOSYS so that libc falls back to clone.
	p.Syscalls = append(p.Syscalls,
		Syscall{
			Names: []string{"clone"}, Action: specs.ActAllow,
			Args:     []specs.LinuxSeccompArg{{Index: 0, Value: cloneNamespaceFlags, ValueTwo: 0, Op: specs.OpMaskedEqual}},
			Excludes: &Filter{Caps: []string{"CAP_SYS_ADMIN"}, Arches: []string{"s390", "s390x"}},
		},
		Syscall{
			Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys,
			Excludes: &Filter{Caps: []string{"CAP_SYS_ADMIN"}},
		},
	)
	for _, c := range capSyscalls {
		p.Syscalls = append(p.Syscalls, Syscall{
			Names: append([]string(nil), c.names...), Action: specs.ActAllow, Includes: &Filter{Caps: []string{c.cap}},
		})
	}
	return p
}
