// kubectl for the devcontainer's workspace stand-in, built from the published
// k8s.io/kubectl module at the version versions.toml [tools] pins (the
// upstream binary's main lives in k8s.io/kubernetes, which `go build` cannot
// fetch as a dependency). Its version is stamped with -ldflags by the bakery.
package main

import (
	"os"

	_ "k8s.io/client-go/plugin/pkg/client/auth" // the cloud auth plugins the release binary carries
	"k8s.io/component-base/cli"
	kubectl "k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	if err := cli.RunNoErrOutput(kubectl.NewDefaultKubectlCommand()); err != nil {
		util.CheckErr(err)
		os.Exit(1)
	}
}
