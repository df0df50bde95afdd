// Command controlplane runs a real Kubernetes control plane for runbook's tests: etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler from Kubernetes' own modules, kwok
// for nodes and pods, and a metrics.k8s.io server behind a real APIService.
//
//	controlplane up --dir DIR        start everything on random loopback ports; writes
//	                                 DIR/cluster.json and DIR/admin.kubeconfig, prints READY
//	controlplane user --dir DIR --name NAME [--group G]... --out FILE
//	                                 a client-certificate kubeconfig for another identity
//
// The other subcommands (etcd, apiserver, controller-manager, scheduler, kwok, metrics) are the
// components themselves; `up` starts each as a child process of this binary so a test can stop
// one (SIGSTOP the controller-manager to stall a rollout) without touching the rest.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: controlplane up|user|etcd|apiserver|controller-manager|scheduler|kwok|metrics ...")
		os.Exit(2)
	}
	sub, args := os.Args[1], os.Args[2:]
	var err error
	switch sub {
	case "up":
		err = runUp(args)
	case "user":
		err = runUser(args)
	case "etcd":
		err = runEtcd(args)
	case "apiserver":
		err = runAPIServer(args)
	case "controller-manager":
		err = runControllerManager(args)
	case "scheduler":
		err = runScheduler(args)
	case "kwok":
		err = runKwok(args)
	case "metrics":
		err = runMetrics(args)
	default:
		err = fmt.Errorf("unknown subcommand %q", sub)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "controlplane %s: %v\n", sub, err)
		os.Exit(1)
	}
}
