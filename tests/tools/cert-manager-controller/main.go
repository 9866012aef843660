// Command cert-manager-controller runs cert-manager's own Certificate and CA-issuer controllers
// (from the published github.com/cert-manager/cert-manager module's pkg/) against a kubeconfig,
// for certpolicy's integration tests. cert-manager's cmd/controller is a separate module that the
// Go module proxy does not serve, so this is the smallest main that starts the same controllers the
// way cmd/controller/app does: one ContextFactory, each named controller's registered constructor,
// the shared informer factories started after every controller registered its informers.
//
// It is test tooling, not a distribution of cert-manager: no webhook, no cainjector, no ACME.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// Each import registers its controllers with controllerpkg.Register in an init().
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	// The Issuer/ClusterIssuer controllers set up CA and SelfSigned issuers through these.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// defaultControllers: the Certificate lifecycle, CertificateRequest approval and signing by CA
// and SelfSigned issuers, and the Issuer/ClusterIssuer readiness controllers.
var defaultControllers = []string{
	"certificates-trigger",
	"certificates-issuing",
	"certificates-key-manager",
	"certificates-request-manager",
	"certificates-readiness",
	"certificates-revision-manager",
	"certificaterequests-approver",
	"certificaterequests-issuer-ca",
	"certificaterequests-issuer-selfsigned",
	"issuers",
	"clusterissuers",
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "path to the kubeconfig of the API server to run against")
	namespace := flag.String("cluster-resource-namespace", "cert-manager",
		"namespace holding the Secrets that ClusterIssuers refer to")
	controllers := flag.String("controllers", strings.Join(defaultControllers, ","), "comma-separated controller names")
	workers := flag.Int("workers", 2, "workers per controller")
	list := flag.Bool("list", false, "print the names of the controllers this binary can run, and exit")
	klog.InitFlags(nil) // -v=N for cert-manager's own debug logging
	flag.Parse()

	if *list {
		names := make([]string, 0, len(controllerpkg.Known()))
		for n := range controllerpkg.Known() {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Println(strings.Join(names, "\n"))
		return
	}
	if err := run(*kubeconfig, *namespace, strings.Split(*controllers, ","), *workers); err != nil {
		fmt.Fprintln(os.Stderr, "cert-manager-controller:", err)
		os.Exit(1)
	}
}

func run(kubeconfig, clusterResourceNamespace string, names []string, workers int) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, logf.Log)

	factory, err := controllerpkg.NewContextFactory(ctx, controllerpkg.ContextOptions{
		Kubeconfig:         kubeconfig,
		KubernetesAPIQPS:   50,
		KubernetesAPIBurst: 100,
		IssuerOptions:      controllerpkg.IssuerOptions{ClusterResourceNamespace: clusterResourceNamespace},
		CertificateOptions: controllerpkg.CertificateOptions{
			// cert-manager's defaults (1h, 32h): a failed request is retried that long after.
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
	})
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	for _, name := range names {
		name = strings.TrimSpace(name)
		construct, ok := controllerpkg.Known()[name]
		if !ok {
			return fmt.Errorf("unknown controller %q (see -list)", name)
		}
		iface, err := construct(factory)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := iface.Run(workers, ctx); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}

	// Every controller registered its informers above; start them (as cmd/controller does).
	shared, err := factory.Build()
	if err != nil {
		return err
	}
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.SharedInformerFactory.Start(ctx.Done())
	fmt.Fprintf(os.Stderr, "cert-manager-controller: started %d controllers\n", len(names))

	select {
	case <-ctx.Done():
	case err := <-errs:
		stop()
		wg.Wait()
		return err
	}
	wg.Wait()
	return nil
}
