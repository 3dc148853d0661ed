// Command noded is a Kubernetes CRI container runtime.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/noded/noded/config"
	"github.com/noded/noded/daemon"
	"github.com/noded/noded/internal/nsutil"
	"github.com/noded/noded/sandbox/podinit"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == podinit.Command {
		return podinit.Run()
	}
	if len(args) > 0 && args[0] == nsutil.HoldCommand {
		return nsutil.Hold()
	}
	if len(args) > 0 && args[0] == "config" {
		return configCmd(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("noded", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opts daemon.Options
	fs.StringVar(&opts.ConfigPath, "config", config.DefaultConfigPath, "config file (TOML); a missing file means defaults")
	fs.StringVar(&opts.Root, "root", config.DefaultRoot, "persistent state dir (images, snapshots, database)")
	fs.StringVar(&opts.State, "state", config.DefaultState, "runtime state dir (sockets, pinned namespaces, bundles)")
	fs.StringVar(&opts.Listen, "listen", config.DefaultSocket, "CRI unix socket path")
	fs.DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long in-flight calls may finish on SIGTERM")
	showVersion := fs.Bool("version", false, "print version information and exit")
	klog.InitFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: noded [flags]\n       noded config default\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "noded: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}
	if *showVersion {
		printVersion(stdout, opts.ConfigPath)
		return 0
	}
	fs.Visit(func(f *flag.Flag) { opts.VerbositySet = opts.VerbositySet || f.Name == "v" })
	defer klog.Flush()

	// SIGHUP is caught from the start: its default action would end the daemon.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	d, err := daemon.New(opts)
	if err != nil {
		fmt.Fprintf(stderr, "noded: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	reloaderDone := make(chan struct{})
	go func() {
		defer close(reloaderDone)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				klog.InfoS("SIGHUP received, reloading the configuration", "config", opts.ConfigPath)
				_ = d.Reload() // logs what it did and any error
			}
		}
	}()
	defer func() { stop(); <-reloaderDone }()
	if err := d.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "noded: %v\n", err)
		return 1
	}
	return 0
}

func configCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == "default" {
		_, _ = stdout.Write(config.DefaultTOML())
		return 0
	}
	fmt.Fprintf(stderr, "Usage: noded config default\n")
	return 2
}
