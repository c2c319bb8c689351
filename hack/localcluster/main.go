// Command localcluster runs a local control plane (kube-apiserver and etcd
// built by hack/build-control-plane.sh) with Roster's CRDs installed, writes
// its kubeconfig, and stops it cleanly on Ctrl-C. make demo and make bench
// use it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"roster.dev/roster/internal/testenv"
)

func main() {
	kubeconfig := flag.String("write-kubeconfig", "bin/demo/kubeconfig", "where to write the kubeconfig")
	flag.Parse()
	if err := run(*kubeconfig); err != nil {
		fmt.Fprintf(os.Stderr, "localcluster: %v\n", err)
		os.Exit(1)
	}
}

func run(kubeconfig string) error {
	env, _, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	// Write to a temporary name first so that readers never see half a file.
	if err := os.WriteFile(kubeconfig+".tmp", env.KubeConfig, 0o600); err != nil {
		return err
	}
	if err := os.Rename(kubeconfig+".tmp", kubeconfig); err != nil {
		return err
	}
	fmt.Printf("Control plane running; kubeconfig at %s\n", kubeconfig)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	_ = os.Remove(kubeconfig)
	return nil
}
