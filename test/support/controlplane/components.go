package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/pflag"
	"go.etcd.io/etcd/server/v3/embed"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kwokconfig "sigs.k8s.io/kwok/pkg/config"
	kwokcmd "sigs.k8s.io/kwok/pkg/kwok/cmd"
	kwoklog "sigs.k8s.io/kwok/pkg/log"
)

// Each component parses os.Args the way its own main does, so make them look like its own.
func asProgram(name string, args []string) {
	os.Args = append([]string{name}, args...)
}

func runEtcd(args []string) error {
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	dir := fs.String("data-dir", "", "data directory")
	client := fs.Int("client-port", 0, "client port on 127.0.0.1")
	peer := fs.Int("peer-port", 0, "peer port on 127.0.0.1")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := embed.NewConfig()
	cfg.Dir = *dir
	cfg.Name = "test"
	cfg.LogLevel = "error"
	cu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", *client))
	pu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", *peer))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// Tests are throwaway: no fsync per write keeps a 2-core machine responsive.
	cfg.UnsafeNoFsync = true
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	<-e.Server.ReadyNotify()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case err := <-e.Err():
		return err
	case <-sig:
		return nil
	}
}

func runAPIServer(args []string) error {
	asProgram("kube-apiserver", args)
	cmd := apiserver.NewAPIServerCommand()
	cmd.SetArgs(args)
	return cmd.Execute()
}

func runControllerManager(args []string) error {
	asProgram("kube-controller-manager", args)
	cmd := controllermanager.NewControllerManagerCommand()
	cmd.SetArgs(args)
	return cmd.Execute()
}

func runScheduler(args []string) error {
	asProgram("kube-scheduler", args)
	cmd := scheduler.NewSchedulerCommand()
	cmd.SetArgs(args)
	return cmd.Execute()
}

func runKwok(args []string) error {
	asProgram("kwok", args)
	// Kubernetes' packages register global flags (--version among them) that cobra would merge
	// into kwok's root command, where its own --version clashes with them.
	pflag.CommandLine = pflag.NewFlagSet("kwok", pflag.ContinueOnError)
	flagset := pflag.NewFlagSet("global", pflag.ContinueOnError)
	flagset.ParseErrorsAllowlist.UnknownFlags = true
	flagset.Usage = func() {}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	ctx, _ = kwoklog.InitFlags(ctx, flagset)
	ctx, err := kwokconfig.InitFlags(ctx, flagset)
	if err != nil {
		return err
	}
	cmd := kwokcmd.NewCommand(ctx)
	cmd.PersistentFlags().AddFlagSet(flagset)
	cmd.SetArgs(args)
	return cmd.ExecuteContext(ctx)
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}
