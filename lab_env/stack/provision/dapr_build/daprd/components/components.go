// Package components registers the Dapr components the course uses.
//
// Adding one: import its package from components-contrib and register its
// constructor under the type name used in a component file's spec.type,
// without the category prefix (state.redis -> "redis").
package components

import (
	"github.com/dapr/components-contrib/bindings/cron"
	bindingshttp "github.com/dapr/components-contrib/bindings/http"
	"github.com/dapr/components-contrib/lock/redis"
	nrkubernetes "github.com/dapr/components-contrib/nameresolution/kubernetes"
	"github.com/dapr/components-contrib/nameresolution/mdns"
	"github.com/dapr/components-contrib/pubsub/in-memory"
	"github.com/dapr/components-contrib/pubsub/kafka"
	pubsubredis "github.com/dapr/components-contrib/pubsub/redis"
	sskubernetes "github.com/dapr/components-contrib/secretstores/kubernetes"
	"github.com/dapr/components-contrib/secretstores/local/env"
	"github.com/dapr/components-contrib/secretstores/local/file"
	stateinmemory "github.com/dapr/components-contrib/state/in-memory"
	stateredis "github.com/dapr/components-contrib/state/redis"

	bindings "github.com/dapr/dapr/pkg/components/bindings"
	locks "github.com/dapr/dapr/pkg/components/lock"
	nameresolution "github.com/dapr/dapr/pkg/components/nameresolution"
	pubsub "github.com/dapr/dapr/pkg/components/pubsub"
	secretstores "github.com/dapr/dapr/pkg/components/secretstores"
	state "github.com/dapr/dapr/pkg/components/state"
)

func init() {
	state.DefaultRegistry.RegisterComponent(stateredis.NewRedisStateStore, "redis")
	state.DefaultRegistry.RegisterComponent(stateinmemory.NewInMemoryStateStore, "in-memory")

	pubsub.DefaultRegistry.RegisterComponent(pubsubredis.NewRedisStreams, "redis")
	pubsub.DefaultRegistry.RegisterComponent(kafka.NewKafka, "kafka")
	pubsub.DefaultRegistry.RegisterComponent(inmemory.New, "in-memory")

	secretstores.DefaultRegistry.RegisterComponent(env.NewEnvSecretStore, "local.env")
	secretstores.DefaultRegistry.RegisterComponent(file.NewLocalSecretStore, "local.file")
	// In Kubernetes mode every sidecar loads the built-in "kubernetes" secret store
	// and resolves app ids through the cluster's DNS (lab-env's kind cluster).
	secretstores.DefaultRegistry.RegisterComponent(sskubernetes.NewKubernetesSecretStore, "kubernetes")

	bindings.DefaultRegistry.RegisterInputBinding(cron.NewCron, "cron")
	// Lab 05's model endpoint (an OpenAI-compatible server) as an output binding.
	bindings.DefaultRegistry.RegisterOutputBinding(bindingshttp.NewHTTP, "http")
	locks.DefaultRegistry.RegisterComponent(redis.NewStandaloneRedisLock, "redis")
	nameresolution.DefaultRegistry.RegisterComponent(mdns.NewResolver, "mdns")
	nameresolution.DefaultRegistry.RegisterComponent(nrkubernetes.NewResolver, "kubernetes")
}
